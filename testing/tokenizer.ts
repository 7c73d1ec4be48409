import { DailyTokenizer, EnvKeySource } from '../schemas/index.ts';

export function tokenizer(days = ['2026-11-29', '2026-11-28', '2026-11-27'], opts = {}) {
  return new DailyTokenizer(new EnvKeySource(days.map((d, i) => `${d}:${Buffer.alloc(32, i + 1).toString('base64')}`).join(',')), opts);
}
