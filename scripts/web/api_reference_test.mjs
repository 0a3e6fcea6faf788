// The API reference in a real browser: opens BASE/docs in headless Chromium (Debian's
// /usr/bin/chromium, driven by playwright-core; nothing downloaded), finds every operation of
// the OpenAPI document on the page, performs GET /v1/products through the page's "Try it out"
// and expects 200, and saves a screenshot.
//
//   node scripts/web/api_reference_test.mjs BASE_URL SCREENSHOT_FILE
//
// Closes with one line `browser: N passed, N failed` (scripts/test adds it to its total).

import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, screenshot] = process.argv.slice(2);
if (!base || !screenshot) {
  console.error('usage: node api_reference_test.mjs BASE_URL SCREENSHOT_FILE');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const results = [];
async function check(name, body) {
  try {
    await body();
    results.push([name, true]);
    console.log(`ok   ${name}`);
  } catch (e) {
    results.push([name, false]);
    console.log(`FAIL ${name}: ${e && e.message ? e.message.split('\n')[0] : e}`);
  }
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const profile = mkdtempSync(join(tmpdir(), 'evi-portal-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport: { width: 1400, height: 1000 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(30000);
  const external = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(base) && !r.url().startsWith('data:')) external.push(r.url());
  });

  await check('the reference lists every operation of the OpenAPI document', async () => {
    const response = await page.goto(`${base}/docs`, { waitUntil: 'load' });
    if (response.status() !== 200) throw new Error(`/docs answered ${response.status()}`);
    const doc = await (await page.request.get(`${base}/docs/openapi.json`)).json();
    const expected = [];
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const method of Object.keys(item)) {
        if (METHODS.includes(method)) expected.push(`${method.toUpperCase()} ${path}`);
      }
    }
    await page.waitForSelector('.opblock .opblock-summary-method');
    const shown = await page.$$eval('.opblock', (blocks) => blocks.map((b) => {
      const method = b.querySelector('.opblock-summary-method')?.textContent.trim();
      const path = b.querySelector('.opblock-summary-path')?.getAttribute('data-path');
      return `${method} ${path}`;
    }));
    const missing = expected.filter((op) => !shown.includes(op));
    if (missing.length) throw new Error(`not on the page: ${missing.join(', ')}`);
    if (expected.length < 30) throw new Error(`only ${expected.length} operations in the document`);
    console.log(`     ${expected.length} operations shown`);
  });

  await check('"Try it out" performs GET /v1/products through the page and gets 200', async () => {
    const block = page.locator('.opblock-get', { has: page.locator('.opblock-summary-path[data-path="/v1/products"]') }).first();
    await block.locator('.opblock-summary').first().click();
    await block.locator('button.try-out__btn').click();
    const [answer] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${base}/v1/products` && r.request().method() === 'GET'),
      block.locator('button.execute').click(),
    ]);
    if (answer.status() !== 200) throw new Error(`the API answered ${answer.status()}`);
    const status = block.locator('.live-responses-table .response .response-col_status').first();
    await status.waitFor();
    const shown = (await status.textContent()).trim();
    if (!shown.startsWith('200')) throw new Error(`the page shows status ${shown}`);
    const body = await answer.json();
    if (!Array.isArray(body.products) || body.products.length === 0) {
      throw new Error(`no products in ${JSON.stringify(body).slice(0, 200)}`);
    }
    // The operation with its answer in view for the screenshot.
    await block.evaluate((el) => el.scrollIntoView({ block: 'start' }));
  });

  await check('the page loads nothing from outside and the screenshot is saved', async () => {
    if (external.length) throw new Error(`requests outside ${base}: ${external.slice(0, 3).join(', ')}`);
    await page.screenshot({ path: screenshot });
    console.log(`     screenshot ${screenshot}`);
  });
} catch (e) {
  results.push(['the browser starts', false]);
  console.log(`FAIL the browser starts: ${e && e.message ? e.message.split('\n')[0] : e}`);
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
const passed = results.filter(([, ok]) => ok).length;
console.log(`browser: ${passed} passed, ${results.length - passed} failed`);
process.exit(results.length && passed === results.length ? 0 : 1);
