/**
 * Assembles the dashboard page: `page.html` (markup and styles) with `client.js` (the drawing code)
 * inlined, plus the server's settings as JSON. Everything is inline on purpose: the page must work on
 * a machine with no internet and loads nothing from anywhere but its own JSON endpoints.
 */
import { readFileSync } from 'node:fs';

const here = new URL('.', import.meta.url);

export interface PageSettings {
  days: number;
  answers: 'private' | 'exact';
  database: string;
  scrapeIntervalMs: number;
}

export function renderPage(s: PageSettings): string {
  const html = readFileSync(new URL('page.html', here), 'utf8');
  const js = readFileSync(new URL('client.js', here), 'utf8');
  // JSON inside <script>: `<` escaped so no value can close the script element.
  const settings = JSON.stringify(s).replace(/</g, '\\u003c');
  return html.replace('/*SETTINGS*/{}', settings).replace('/*CLIENT*/', () => js);
}
