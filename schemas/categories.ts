/**
 * THE CATEGORY MAP: the privacy policy (README.md names it; section numbers refer to it) as data.
 *
 * Every Avro field in `avro/*.avsc` names one of these categories; the compiler (`compile.ts`) refuses a
 * field without one or with an unknown one, and derives the split from this table alone: a field of a
 * personal category goes to the personal record (if its retention is not P0D) and can reach the
 * non-personal EventFact only through a derivation listed here. `CATEGORIES.md` is generated from it
 * (`npm run schemas:doc`); a test fails when the checked-in table is stale.
 *
 * Retention: policy 4.4 gives no figures ("for the period necessary for the purpose of the information
 * collection ... Detailed retention periods are specified in the specific service or related product
 * page"). The periods below are this project's choice for the telemetry service, each justified by its
 * purpose; P0D means "used inside ingest only, never stored".
 */
import type { Zone } from './contract.ts';
import { DAY_MS } from './time.ts';

/**
 * The consent that gates a category: `analytics` (User Experience Program: without it the events are
 * dropped), `personalised_ads` and `location` (without them the fields are stripped from the personal
 * record and counted), or `none`.
 */
export type Consent = 'none' | 'analytics' | 'personalised_ads' | 'location';

/**
 * Named generalisations a field may go through to reach non-personal output.
 * - copy: the value as is (only for non-personal categories).
 * - union_branch: which branch of a union (the event kind), not its content.
 * - time_to_day: a timestamp generalised to its UTC day.
 * - mcc_to_country: a mobile country code generalised to an ISO country (see `mccCountry`).
 * - daily_token: a keyed hash under the secret of the event's UTC day (destroyed after the grace).
 * - event_key: a keyed hash of (daily token, event id) under the day secret, the dedup key.
 * - drop: nothing reaches non-personal output.
 */
export const DERIVATIONS = ['copy', 'union_branch', 'time_to_day', 'mcc_to_country', 'daily_token', 'event_key', 'drop'] as const;
export type Derivation = (typeof DERIVATIONS)[number];

export interface CategoryEntry {
  title: string;
  personal: boolean;
  /** Policy section(s) and the words the entry rests on, quoted. */
  policy: { section: string; quote: string }[];
  purpose: string;
  /** ISO 8601 period (`P30D`, `P25M`; see `retentionDays`); P0D = used at ingest only, never stored. */
  retention: string;
  retentionWhy: string;
  consent: Consent;
  /** Bound to the residency zone (policy 6) when stored. */
  residency: boolean;
  /** Derivations allowed into non-personal output. Non-personal categories implicitly allow `copy`/`union_branch`. */
  derivations: Derivation[];
  /**
   * How precisely a timestamp of this category is kept in the personal records (schemas/personal.ts):
   * `hour` or `day` cuts it to the start of its UTC hour or day. Absent: as sent.
   */
  personalPrecision?: 'hour' | 'day';
  /**
   * `false`: the category is stored only where a raw event is (a rejected event's record, for replay,
   * with the category's retention), never in the device's personal records (schemas/personal.ts).
   */
  deviceRecord?: false;
  /**
   * The category identifies the device: each of its values a batch sent (and consent let through) is
   * registered in the zone's key store, so a rights request finds the device by any of them
   * (rights/README.md).
   */
  lookup?: true;
}

const P_112_DEVICE = '1.1.2';

export const CATEGORIES = {
  device_identifiers: {
    title: 'Device identifiers',
    personal: true,
    policy: [
      {
        section: P_112_DEVICE,
        quote: 'Device or SIM-related information. For example, IMEI number/OAID number, GAID number, IMSI number, MAC address, serial number, ... Android ID',
      },
    ],
    purpose: 'Activating and operating MIUI services for this device (1.2 "Providing MIUI services"); the daily token for counting daily actives.',
    lookup: true,
    retention: 'P30D',
    retentionWhy: 'Long enough to answer access/erasure requests (5.2) and investigate service faults for a recent batch.',
    consent: 'none',
    residency: true,
    derivations: ['daily_token', 'drop'],
  },
  sim_identifiers: {
    title: 'SIM identifiers',
    personal: true,
    policy: [
      { section: P_112_DEVICE, quote: 'IMSI number' },
      { section: '1.2', quote: 'GAID number, IMEI number, IMSI number, phone number, device ID' },
    ],
    purpose: 'Activating MIUI services and diagnosing SIM activation failures (1.2).',
    retention: 'P30D',
    retentionWhy: 'Same as device identifiers: kept with the device record.',
    consent: 'none',
    residency: true,
    lookup: true,
    derivations: ['drop'],
  },
  network_location: {
    title: 'Network location (mobile country/network code, operator)',
    personal: true,
    policy: [
      { section: P_112_DEVICE, quote: 'Location information ... region, country code, city code, mobile network code, mobile country code, cell identity' },
      { section: P_112_DEVICE, quote: 'SIM card operator and its location area' },
    ],
    purpose: 'Residency zone of the personal record (6); country dimension of the aggregates, generalised.',
    retention: 'P30D',
    retentionWhy: 'Kept with the device record.',
    consent: 'none',
    residency: true,
    derivations: ['mcc_to_country', 'drop'],
  },
  precise_location: {
    title: 'Precise location',
    personal: true,
    policy: [
      { section: P_112_DEVICE, quote: 'various types of information on your accurate or approximate location ... longitude and latitude information' },
      { section: '5.1', quote: 'Toggle on/off for the User Experience Program and location access functions' },
    ],
    purpose: 'Location-related services only (1.2 "Providing location-based services"); never analytics.',
    retention: 'P7D',
    retentionWhy:
      'Most sensitive item of the batch; no analytics use, kept only briefly for the service that sent it; stripped at ingest without location consent.',
    consent: 'location',
    residency: true,
    derivations: ['drop'],
  },
  advertising_ids: {
    title: 'Third-party advertising identifiers',
    personal: true,
    policy: [
      {
        section: P_112_DEVICE,
        quote: 'Information specific to you that may be assigned by third party service providers and business partners: ... your advertising ID',
      },
      { section: '1.2', quote: 'Targeted advertising is only done with your consent, where required under applicable laws.' },
    ],
    purpose: 'Personalised advertising, only with consent.',
    retention: 'P30D',
    retentionWhy: 'Kept with the device record while consent stands; stripped at ingest when consent is off.',
    consent: 'personalised_ads',
    residency: true,
    lookup: true,
    derivations: ['drop'],
  },
  app_usage_identifiers: {
    title: 'Application usage identifiers (event, session and upload ids)',
    personal: true,
    policy: [{ section: P_112_DEVICE, quote: 'unique identifiers for application (e.g. VAID number, OAID number, AAID number, Instance ID)' }],
    purpose: 'End-to-end deduplication of events (event_id becomes event_key); nothing else.',
    retention: 'P0D',
    retentionWhy: 'Needed only inside ingest to derive the dedup key; storing them would add a join key between the two kinds of data (1.1.4).',
    consent: 'analytics',
    residency: true,
    derivations: ['event_key', 'drop'],
  },
  app_usage_facts: {
    title: 'Application usage facts (other apps installed/updated/deleted)',
    personal: true,
    policy: [
      {
        section: P_112_DEVICE,
        quote: 'application basic information, such as application list ... application status record (e.g. downloading, installing, updating, deleting)',
      },
    ],
    purpose:
      'Checked at ingest (length) and then dropped: no aggregate reads it, and the facts keep only that the event was an app_status. The app store and update services do not get app lists from this pipeline.',
    retention: 'P0D',
    retentionWhy:
      'Never stored: a per-device app list or status record would mark the batches that reported an app status, and the facts of the same batch show kind app_status, so its presence on both sides links a personal record to its events record (1.1.4 "used separately"); nothing the aggregates need is in it (1.1 "We will only collect the information that is necessary"). Keeping app lists would take a store without the device identity, which is not built.',
    consent: 'analytics',
    residency: true,
    derivations: ['drop'],
  },
  activity_time: {
    title: 'Activity time (upload times)',
    personal: true,
    policy: [{ section: P_112_DEVICE, quote: 'log information generated by using the services (such as registration time, access time, activity time, etc.)' }],
    purpose: 'On which UTC days the device uploaded (sent and received), in the personal record.',
    retention: 'P30D',
    retentionWhy: 'Kept with the device record it dates.',
    consent: 'analytics',
    residency: true,
    derivations: ['drop'],
    // Exact times would be a fingerprint shared with the mix the record is written in (1.1.4). Cut to the
    // day, not the hour: a device's records of one day are then byte-equal and written once
    // (ingest/mix.ts RecentRecords), where hourly ones put a record of it in a mix every hour it was
    // active, next to its token's events record, and intersecting those mixes finds the token.
    personalPrecision: 'day',
  },
  event_time: {
    title: 'Event time (when each event happened)',
    personal: true,
    policy: [{ section: P_112_DEVICE, quote: 'log information generated by using the services (such as registration time, access time, activity time, etc.)' }],
    purpose: 'The UTC day of each event, for the aggregates (time_to_day); a rejected event keeps it for replay.',
    retention: 'P30D',
    retentionWhy: 'Only in a rejected event, kept as long as the other fields of a reject.',
    consent: 'analytics',
    residency: true,
    derivations: ['time_to_day', 'drop'],
    // Not in the device record (1.1.4 "used separately"): the days a batch's events fall on are the days
    // of its events records, so a record naming yesterday hides only among the few records of yesterday
    // in its mix (late and midnight-spanning batches), and a batch spanning midnight would write a record
    // per day. Without them a device's record of a day names only the day it uploaded, and it hides among
    // every events record of its mix and country (ingest/README.md, "Linkage of the topics").
    deviceRecord: false,
  },
  ip_address: {
    title: 'IP address',
    personal: true,
    policy: [{ section: P_112_DEVICE, quote: 'Log information: ... IP addresses, network request information' }],
    purpose: 'Security and fraud prevention (1.2 "Implementing and maintaining security safeguards").',
    retention: 'P7D',
    retentionWhy: 'Only abuse investigation needs it, and only recently.',
    consent: 'none',
    residency: true,
    derivations: ['drop'],
  },
  app_settings: {
    title: 'Application settings (region, language, time zone)',
    personal: true,
    policy: [{ section: P_112_DEVICE, quote: 'application settings (region, language, time zone, font)' }],
    purpose: 'Serving the device in its language and region; residency fallback when no SIM is present.',
    retention: 'P30D',
    retentionWhy: 'Kept with the device record.',
    consent: 'none',
    residency: true,
    derivations: ['drop'],
  },
  account_contact: {
    title: 'Account and contact information',
    personal: true,
    policy: [
      { section: '1.1.1', quote: 'your name, mobile phone number, email address ... if you create an account' },
      { section: '1.1.3', quote: 'account IDs, nicknames, avatar, and email address from third-party social network services' },
    ],
    purpose: 'Linking the device to the Mi Account for account services (1.2 "Creating and maintaining your Mi Account").',
    retention: 'P30D',
    retentionWhy: 'Kept with the device record; the account system of record lives elsewhere.',
    consent: 'none',
    residency: true,
    derivations: ['drop'],
  },
  financial_order: {
    title: 'Financial and order information',
    personal: true,
    policy: [{ section: '1.1.1', quote: 'delivery address, order, invoicing details, bank account number, account holder name, credit card number' }],
    purpose: 'mi.com retail only. Not collected by the telemetry pipeline: no field may carry it.',
    retention: 'P0D',
    retentionWhy: 'Never stored by this pipeline.',
    consent: 'none',
    residency: true,
    derivations: ['drop'],
  },
  ecv: {
    title: 'Environmental characteristics value (ECV)',
    personal: true,
    policy: [
      {
        section: P_112_DEVICE,
        quote: 'Environmental characteristics value (ECV) (i.e. value generated from Mi Account ID, device ID, connected Wi-Fi ID, and location information)',
      },
    ],
    purpose: 'Verifying user identity (1.2). Not collected by the telemetry pipeline.',
    retention: 'P0D',
    retentionWhy: 'Never stored by this pipeline.',
    consent: 'none',
    residency: true,
    derivations: ['drop'],
  },
  service_usage: {
    title: 'Service usage content (messages, searches, browsing in MIUI services)',
    personal: true,
    policy: [
      {
        section: P_112_DEVICE,
        quote: 'Information generated when you use a MIUI service, such as your badges, ratings, sign-in information and browsing records',
      },
    ],
    purpose: 'Performing the MIUI service itself. Not collected by the telemetry pipeline.',
    retention: 'P0D',
    retentionWhy: 'Never stored by this pipeline.',
    consent: 'none',
    residency: true,
    derivations: ['drop'],
  },
  crash_logs: {
    title: 'Crash logs (stack trace text)',
    personal: true,
    policy: [
      { section: P_112_DEVICE, quote: 'Log information: ... standard system logs, crash information' },
      { section: '1.2', quote: 'we may record relevant information, such as ... crash logs information' },
    ],
    purpose:
      'Checked at ingest (length) and then dropped. Crash rate and crash grouping need only the non-personal crash event (signature, exception type: crash_events), which stays in the facts; free text may hold paths, user content or identifiers, so it is personal.',
    retention: 'P0D',
    retentionWhy:
      'Never stored: a per-device stack trace would mark the batches that had a crash, and the facts of the same batch show kind crash, so its presence on both sides links a personal record to its events record (1.1.4 "used separately"); the crash count and signature are in the crash event (1.1 "We will only collect the information that is necessary"). Keeping traces would take a trace store without the device identity, which is not built.',
    consent: 'analytics',
    residency: true,
    derivations: ['drop'],
  },
  consent_choices: {
    title: 'Consent choices',
    personal: true,
    policy: [{ section: '5.1', quote: 'Toggle on/off for the User Experience Program and location access functions' }],
    purpose: 'Proof of what the user allowed when the batch was collected (5.3 withdrawal of consent).',
    retention: 'P30D',
    retentionWhy: 'Kept as long as the personal record it justifies.',
    consent: 'none',
    residency: true,
    derivations: ['drop'],
  },
  device_info: {
    title: 'Non-identifiable device information (manufacturer, model, OS/ROM version)',
    personal: false,
    policy: [
      { section: '1.1.4', quote: 'statistical data generated when you use a specific service (e.g. non-identifiable device related information' },
      { section: P_112_DEVICE, quote: 'device manufacturer details and model name ... MIUI version and type, ROM version, Android version' },
    ],
    purpose: 'Dimensions of the aggregates (crash rate per model and OS version).',
    retention: 'P25M',
    retentionWhy: 'Aggregates compare a year with the previous one (4.4 allows longer retention for statistical purposes).',
    consent: 'analytics',
    residency: false,
    derivations: ['copy', 'drop'],
  },
  app_info: {
    title: 'Application build information (app id, version, SDK version)',
    personal: false,
    policy: [{ section: P_112_DEVICE, quote: 'application basic information, such as ... application ID information, SDK version' }],
    purpose: 'Dimensions of the aggregates (per app and app version).',
    retention: 'P25M',
    retentionWhy: 'As for device information.',
    consent: 'analytics',
    residency: false,
    derivations: ['copy', 'drop'],
  },
  usage_statistics: {
    title: 'Non-identifiable usage statistics (event kind, sessions, page views, durations)',
    personal: false,
    policy: [{ section: '1.1.4', quote: 'daily usage events, page access events, page access time events and session events' }],
    purpose: 'Daily actives, sessions and engagement aggregates (1.1.4 "we may only need the number of users who are active in a day").',
    retention: 'P25M',
    retentionWhy: 'As for device information.',
    consent: 'analytics',
    residency: false,
    derivations: ['copy', 'union_branch', 'drop'],
  },
  network_monitoring: {
    title: 'Network monitoring data',
    personal: false,
    policy: [{ section: '1.1.4', quote: 'Network monitoring data (e.g. request time, number of request or error request etc.)' }],
    purpose: 'Service health aggregates.',
    retention: 'P25M',
    retentionWhy: 'As for device information.',
    consent: 'analytics',
    residency: false,
    derivations: ['copy', 'drop'],
  },
  crash_events: {
    title: 'Application crash events (signature, exception type)',
    personal: false,
    policy: [{ section: '1.1.4', quote: 'Application crash events (e.g. the logging automatically generated after the application crashed etc.)' }],
    purpose: 'Crash counts and crash-free rate. Formats are enforced (hex signature, Java class name) so free text cannot ride along.',
    retention: 'P25M',
    retentionWhy: 'As for device information.',
    consent: 'analytics',
    residency: false,
    derivations: ['copy', 'drop'],
  },
  unclassified: {
    title: 'Unclassified rejected input',
    personal: true,
    policy: [
      {
        section: 'About this Privacy Policy',
        quote:
          '"personal information" means information that can be used to directly or indirectly identify an individual, either from that information alone or from that information combined with other information',
      },
    ],
    purpose:
      'Showing operators and the device why an event was refused. A rejected event failed validation, so its fields cannot be trusted to hold what their categories say: all of it is treated as personal.',
    retention: 'P7D',
    retentionWhy: 'Long enough to fix a broken client release.',
    consent: 'analytics',
    residency: true,
    derivations: ['drop'],
  },
  structure: {
    title: 'Structure (a record that only groups fields)',
    personal: false,
    policy: [{ section: '-', quote: 'No data of its own: every field inside carries its own category.' }],
    purpose: 'Grouping.',
    retention: 'P0D',
    retentionWhy: 'Holds no value.',
    consent: 'none',
    residency: false,
    derivations: ['drop'],
  },
} as const satisfies Record<string, CategoryEntry>;

export type CategoryName = keyof typeof CATEGORIES;
export type CategoryMap = Record<string, CategoryEntry>;

/**
 * A retention of the map (an ISO 8601 period of years, months, weeks and days: `P30D`, `P25M`, `P1Y`)
 * in whole days, with ONE calendar for every consumer (the topics' retention.ms in ingest, the
 * aggregates' retention in the aggregator): a year is 365 days, a month 30 days, a week 7 days. A
 * month of 30 days keeps data no longer than the calendar month would (25 months -> 750 days).
 * Anything else (hours, fractions, a negative period) throws: the map must not say what no consumer
 * can honour.
 */
export function retentionDays(period: string): number {
  const m = /^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?$/.exec(period);
  if (!m) throw new Error(`unsupported ISO 8601 period ${period}: use years, months, weeks and days (P25M, P30D)`);
  return Number(m[1] ?? 0) * 365 + Number(m[2] ?? 0) * 30 + Number(m[3] ?? 0) * 7 + Number(m[4] ?? 0);
}

/**
 * The retention classes of personal data (schemas/personal.ts): the distinct retentions of the stored
 * personal categories (not P0D; `unclassified` has its rejects topics), longest first, each with its
 * class name (`p30d`) and Kafka retention.ms. The topic plan makes one personal topic per zone and class.
 */
export function personalRetentionClasses(map: CategoryMap = CATEGORIES): Array<{ name: string; retention: string; ms: number }> {
  const set = new Set<string>();
  for (const [name, e] of Object.entries(map)) if (e.personal && e.retention !== 'P0D' && name !== 'unclassified') set.add(e.retention);
  return [...set].sort((a, b) => retentionDays(b) - retentionDays(a)).map((r) => ({ name: r.toLowerCase(), retention: r, ms: retentionMs(r) }));
}

/** `retentionDays` in milliseconds (Kafka's retention.ms). */
export function retentionMs(period: string): number {
  return retentionDays(period) * DAY_MS;
}

/**
 * Residency rule of policy section 6, as data: "The personal information that we collect and generate
 * in operations within the territory of Mainland China is stored in data centers located in Mainland
 * China ... in our operations in Russia is processed and stored in data centers located in Russia ...
 * in operations in India is stored in data centers located in India."
 * The SIM mobile country code decides; the settings region is the fallback (no SIM); else rest of world.
 * MCC 454 (Hong Kong) and 455 (Macau) are not Mainland China.
 */
export const RESIDENCY = {
  byMcc: { '460': 'cn', '461': 'cn', '250': 'ru', '404': 'in', '405': 'in', '406': 'in' },
  byRegion: { CN: 'cn', RU: 'ru', IN: 'in' },
  fallback: 'row',
} as const satisfies { byMcc: Record<string, Zone>; byRegion: Record<string, Zone>; fallback: Zone };

/** mcc_to_country: ITU-T E.212 mobile country codes to ISO 3166-1 alpha-2; unknown codes give 'ZZ'. */
export const MCC_COUNTRY: Record<string, string> = {
  '202': 'GR',
  '204': 'NL',
  '206': 'BE',
  '208': 'FR',
  '212': 'MC',
  '213': 'AD',
  '214': 'ES',
  '216': 'HU',
  '218': 'BA',
  '219': 'HR',
  '220': 'RS',
  '222': 'IT',
  '226': 'RO',
  '228': 'CH',
  '230': 'CZ',
  '231': 'SK',
  '232': 'AT',
  '234': 'GB',
  '235': 'GB',
  '238': 'DK',
  '240': 'SE',
  '242': 'NO',
  '244': 'FI',
  '246': 'LT',
  '247': 'LV',
  '248': 'EE',
  '250': 'RU',
  '255': 'UA',
  '257': 'BY',
  '259': 'MD',
  '260': 'PL',
  '262': 'DE',
  '266': 'GI',
  '268': 'PT',
  '270': 'LU',
  '272': 'IE',
  '274': 'IS',
  '276': 'AL',
  '278': 'MT',
  '280': 'CY',
  '282': 'GE',
  '283': 'AM',
  '284': 'BG',
  '286': 'TR',
  '293': 'SI',
  '294': 'MK',
  '297': 'ME',
  '302': 'CA',
  '310': 'US',
  '311': 'US',
  '312': 'US',
  '313': 'US',
  '314': 'US',
  '315': 'US',
  '316': 'US',
  '334': 'MX',
  '338': 'JM',
  '368': 'CU',
  '370': 'DO',
  '400': 'AZ',
  '401': 'KZ',
  '404': 'IN',
  '405': 'IN',
  '406': 'IN',
  '410': 'PK',
  '412': 'AF',
  '413': 'LK',
  '414': 'MM',
  '415': 'LB',
  '416': 'JO',
  '417': 'SY',
  '418': 'IQ',
  '419': 'KW',
  '420': 'SA',
  '421': 'YE',
  '422': 'OM',
  '424': 'AE',
  '425': 'IL',
  '426': 'BH',
  '427': 'QA',
  '428': 'MN',
  '429': 'NP',
  '430': 'AE',
  '431': 'AE',
  '432': 'IR',
  '434': 'UZ',
  '436': 'TJ',
  '437': 'KG',
  '438': 'TM',
  '440': 'JP',
  '441': 'JP',
  '450': 'KR',
  '452': 'VN',
  '454': 'HK',
  '455': 'MO',
  '456': 'KH',
  '457': 'LA',
  '460': 'CN',
  '461': 'CN',
  '466': 'TW',
  '470': 'BD',
  '472': 'MV',
  '502': 'MY',
  '505': 'AU',
  '510': 'ID',
  '514': 'TL',
  '515': 'PH',
  '520': 'TH',
  '525': 'SG',
  '528': 'BN',
  '530': 'NZ',
  '602': 'EG',
  '603': 'DZ',
  '604': 'MA',
  '605': 'TN',
  '606': 'LY',
  '608': 'SN',
  '621': 'NG',
  '630': 'CD',
  '639': 'KE',
  '640': 'TZ',
  '641': 'UG',
  '645': 'ZM',
  '648': 'ZW',
  '655': 'ZA',
  '702': 'BZ',
  '704': 'GT',
  '706': 'SV',
  '708': 'HN',
  '710': 'NI',
  '712': 'CR',
  '714': 'PA',
  '716': 'PE',
  '722': 'AR',
  '724': 'BR',
  '730': 'CL',
  '732': 'CO',
  '734': 'VE',
  '736': 'BO',
  '740': 'EC',
  '744': 'PY',
  '748': 'UY',
};

/** Residency zone from the SIM MCC, else the settings region, per `RESIDENCY`. */
export function zoneOf(mcc: string | null | undefined, region: string | null | undefined, rule = RESIDENCY): Zone {
  const byMcc = rule.byMcc as Record<string, Zone>;
  const byRegion = rule.byRegion as Record<string, Zone>;
  if (mcc && mcc.length === 3) return byMcc[mcc] ?? rule.fallback;
  if (region) return byRegion[region] ?? rule.fallback;
  return rule.fallback;
}
