// Headless Debian Chromium driven by playwright-core, as the browser tests use
// it: a fresh profile, no background networking (this machine's network is
// closed), and a helper that records requests leaving the server and console
// errors of a page.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  throw new Error(`the 'playwright-core' package is missing: run 'npm ci' in tests/api/js (${e.message})`);
}

/** Launches Chromium ($CHROMIUM or /usr/bin/chromium); returns { context, close() }. */
export async function launchBrowser() {
  const profile = mkdtempSync(join(tmpdir(), 'colony-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-default-apps', '--disable-dev-shm-usage'],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** A new page that collects requests not to `baseUrl` (foreign) and console/page errors. */
export async function watchedPage(context, baseUrl) {
  const page = await context.newPage();
  const foreign = [];
  const consoleErrors = [];
  page.on('request', (r) => { if (!r.url().startsWith(baseUrl)) foreign.push(r.url()); });
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  return { page, foreign, consoleErrors };
}
