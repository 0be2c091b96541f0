// Browser benchmarks for docs/BENCHMARKS.md:
//
//   node web/e2e/bench.mjs URL [RUNS]
//
// against a running `athena-edge serve` whose browser core is built. Prints
// one JSON line: page ready (navigation start → the edge open and its
// memories on screen; performance.now() at that point) for a fresh browser
// profile and for a reload, each the median of RUNS (default 5), and local
// recall over 5,000 memories in the tab (athena.bench: 50 hybrid recalls
// with explanations, K 10, on a separate in-memory store).
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [url, runsArg = '5'] = process.argv.slice(2);
if (!url) {
  console.error('usage: node web/e2e/bench.mjs URL [RUNS]');
  process.exit(2);
}
const runs = Number(runsArg);
const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--no-first-run', '--disable-sync', '--disable-dev-shm-usage'];
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function withProfile(fn) {
  const profile = mkdtempSync(join(tmpdir(), 'athena-bench-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args });
  try {
    const page = ctx.pages()[0] || await ctx.newPage();
    page.setDefaultTimeout(120000);
    return await fn(page);
  } finally {
    await ctx.close();
    rmSync(profile, { recursive: true, force: true });
  }
}
const ready = async (page) => {
  await page.waitForSelector('body[data-ready="true"]');
  return page.evaluate(() => window.athenaReadyMs);
};

const fresh = [];
const reload = [];
let bench;
for (let i = 0; i < runs; i++) {
  await withProfile(async (page) => {
    await page.goto(url);
    fresh.push(await ready(page));
    await page.reload();
    reload.push(await ready(page));
    if (i === runs - 1) bench = await page.evaluate(() => window.athenaTest.bench());
  });
}
console.log(JSON.stringify({ ready_fresh_ms: median(fresh), ready_reload_ms: median(reload), fresh, reload, bench }));
