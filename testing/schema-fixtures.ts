/** Realistic batches for tests and bench (avsc in-memory shape). */
import { randomUUID } from 'node:crypto';

export const NS = 'telemetry.v1';
export const NOW = Date.UTC(2026, 10, 29, 12, 0, 0);

export function device(over: Record<string, unknown> = {}) {
  return {
    device_id: 'dev-5f1c2e7a-9b43-4d8e-a1c0-7e2f9d3b6a51',
    imei: '861234567890123',
    oaid: 'oaid-0b7e8c9d-1234-4f5a-9abc-def012345678',
    gaid: '38400000-8cf0-11bd-b23e-10b96e40000d',
    imsi: '460001234567890',
    sim_mcc: '460',
    sim_mnc: '01',
    sim_operator: 'China Mobile',
    manufacturer: 'Xiaomi',
    model: 'M2102J20SG',
    os_version: '13',
    rom_version: 'MIUI 14.0.3',
    app_id: 'com.miui.weather2',
    app_version: '13.0.6.1',
    sdk_version: '2.4.0',
    locale: 'zh-CN',
    timezone: 'Asia/Shanghai',
    region: 'CN',
    account_id: null,
    location: null,
    ...over,
  };
}

/**
 * The payload of event `i`: the union branch wrapped by its full name, the event kinds in turn (every
 * kind once in eight events). Also the payloads of testing/batches.ts.
 */
export function eventPayload(i: number): Record<string, Record<string, unknown>> {
  const kinds: Array<Record<string, Record<string, unknown>>> = [
    { [`${NS}.SessionStart`]: {} },
    { [`${NS}.PageView`]: { page: 'forecast/daily', duration_ms: 1200 + i } },
    { [`${NS}.AppForeground`]: {} },
    { [`${NS}.NetworkStats`]: { request_count: 12, error_count: 1, latency_ms: 85 } },
    { [`${NS}.AppBackground`]: {} },
    { [`${NS}.AppStatus`]: { action: 'update', package: 'com.tencent.mm', version: '8.0.40' } },
    {
      [`${NS}.Crash`]: {
        signature: '9f86d081884c7d65',
        exception_type: 'java.lang.NullPointerException',
        app_version: '13.0.6.1',
        stack_trace: 'at com.miui.weather2.Main.onCreate(Main.java:42)',
      },
    },
    { [`${NS}.SessionEnd`]: { duration_ms: 65_000 } },
  ];
  return kinds[i % kinds.length]!;
}

export function event(i: number, time = NOW - 60_000, over: Record<string, unknown> = {}) {
  return { event_id: randomUUID(), time, session_id: randomUUID(), payload: eventPayload(i), ...over };
}

export function batch(n = 50, over: Record<string, unknown> = {}) {
  return {
    batch_id: randomUUID(),
    sent_at: NOW - 1000,
    device: device(),
    consent: { analytics: true, personalised_ads: true },
    events: Array.from({ length: n }, (_, i) => event(i)),
    ...over,
  };
}
