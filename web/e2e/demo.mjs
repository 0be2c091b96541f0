// End-to-end test of the browser demo, driven by tests/browser_e2e_test.go:
//
//   node web/e2e/demo.mjs URL ARTIFACTS_DIR
//
// Drives Debian's chromium (/usr/bin/chromium, or $CHROMIUM) with
// playwright-core. Talks to the Go test over stdio: every event is one line
// "@@ {json}" on stdout; where the test has work to do, the script waits for
// one JSON line on stdin. Exits non-zero on the first failed check.
//
//   → @@ {"event":"synced", device, ids: [...], contents: [...], ready_ms}
//       the tab made three memories offline, recalled one, went online and
//       synced. The test checks the server holds them, then makes a memory
//       on a CLI edge, syncs it, and answers:
//   ← {"cli_content": "...", "cli_device": "..."}
//   → @@ {"event":"done", ready_ms, reload_ready_ms, bench, screenshot}
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const [url, artifacts = 'artifacts'] = process.argv.slice(2);
if (!url) {
  console.error('usage: node web/e2e/demo.mjs URL [ARTIFACTS_DIR]');
  process.exit(2);
}
const TIMEOUT = 20000;
const emit = (event, data = {}) => console.log('@@ ' + JSON.stringify({ event, ...data }));
const log = (...a) => console.error('[e2e]', ...a);
const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function readReply() {
  const { value, done } = await stdinLines.next();
  if (done) throw new Error('the Go test closed stdin');
  return JSON.parse(value);
}
function check(cond, msg) {
  if (!cond) throw new Error('check failed: ' + msg);
}

const profile = mkdtempSync(join(tmpdir(), 'athena-chromium-'));
const problems = []; // uncaught page errors and CSP violations
let context;

async function main() {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--no-first-run', '--disable-sync', '--disable-dev-shm-usage'],
    viewport: { width: 1280, height: 900 },
  });
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('pageerror', (err) => problems.push('pageerror: ' + err.message));
  page.on('console', (m) => {
    const t = m.text();
    if (m.type() === 'error' && /Content.Security.Policy|Refused to/i.test(t)) problems.push('csp: ' + t);
    if (m.type() === 'error' || m.type() === 'warning') log('console.' + m.type() + ':', t);
  });
  page.on('dialog', (d) => d.dismiss()); // an XSS alert() would land here

  // 1. Open the page: it is served with a CSP and comes up as an edge.
  const resp = await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 90000 });
  const csp = resp.headers()['content-security-policy'] || '';
  check(csp.includes("script-src 'self' 'wasm-unsafe-eval'"), 'the page carries the CSP: ' + csp);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 90000 }); // a cold serve compiles the core first
  const readyMs = await page.evaluate(() => window.athenaReadyMs);
  const device = (await page.textContent('#device')).trim();
  check(/^web-[0-9a-f-]+$/.test(device), 'a device ID: ' + device);
  log('ready in', readyMs.toFixed(0), 'ms as', device);
  await waitSync(page, 'connected', 0); // the project pushed

  // 2. Offline: three memories, one recall, all local.
  await context.setOffline(true);
  await page.waitForSelector('#net[data-state="offline"]');
  await page.waitForSelector('#sync-state[data-state="offline"]');
  const contents = [
    'The deploy pipeline runs database migrations before the canary release',
    'Banana bread: three ripe bananas, flour, butter, sugar; bake 60 minutes',
    '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2"> is markup, not code',
  ];
  // By keyboard: focus, type, Ctrl+Enter saves; tags too.
  await page.focus('#remember-content');
  await page.keyboard.type(contents[0]);
  await page.focus('#remember-tags');
  await page.keyboard.type('ops, deploy');
  await page.focus('#remember-content');
  await page.keyboard.press('Control+Enter');
  await page.waitForSelector('#local-list li[data-sync="pending"]');
  for (const c of contents.slice(1)) {
    await page.fill('#remember-content', c);
    await page.fill('#remember-tags', '');
    await page.click('#remember-btn');
    await page.waitForFunction((c) => [...document.querySelectorAll('#local-list .content')].some((e) => e.textContent === c), c);
  }
  await page.waitForFunction(() => document.querySelector('#st-pending').textContent === '3');
  check(await page.locator('#local-list li[data-sync="pending"]').count() === 3, 'three pending memories');

  await page.fill('#recall-query', 'database migrations deploy');
  await page.press('#recall-query', 'Enter');
  await page.waitForSelector('#recall-results li');
  const top = await page.textContent('#recall-results li:first-child .content');
  check(top.includes(contents[0]), 'offline recall finds the deploy memory first: ' + top);
  const explain = await page.textContent('#recall-results li:first-child .explain');
  check(/semantic .* keyword .* ranks vector/.test(explain), 'the recall is explained: ' + explain);
  log('offline recall:', explain);

  // 3. Online again: sync pushes the three memories.
  await context.setOffline(false);
  await page.waitForSelector('#net[data-state="online"]');
  await waitSync(page, 'connected', 0);
  await page.waitForFunction(() => document.querySelectorAll('#local-list li[data-sync="synced"]').length === 3);
  const ids = await page.$$eval('#local-list li[data-sync="synced"]', (ls) => ls.map((l) => l.dataset.id));
  emit('synced', { device, ids, contents, ready_ms: readyMs });

  // 4. The test made a memory on a CLI edge and synced it to the server.
  const reply = await readReply();
  const cli = reply.cli_content;
  // The live server view shows it, from the CLI's device...
  await page.waitForFunction(([c, d]) => [...document.querySelectorAll('#server-list li')]
    .some((li) => li.querySelector('.content').textContent === c && li.dataset.device === d), [cli, reply.cli_device]);
  // ... and the tab pulls it into its own store (the server pokes it).
  await page.waitForFunction((c) => [...document.querySelectorAll('#local-list li[data-sync="received"] .content')]
    .some((e) => e.textContent === c), cli);
  // The server view also shows the tab's memories as "this tab".
  await page.waitForFunction((n) => document.querySelectorAll('#server-list .badge.dev[data-kind="self"]').length >= n, 3);

  // 5. Content with <script> is text: shown verbatim, never run.
  await checkEscaped(page, contents[2]);

  mkdirSync(artifacts, { recursive: true });
  const screenshot = join(artifacts, 'browser-demo.png');
  await page.screenshot({ path: screenshot, fullPage: true });

  // 6. Reload: the memories are still in the tab (IndexedDB), same device.
  await page.reload({ waitUntil: 'domcontentloaded' });
  await page.waitForSelector('body[data-ready="true"]');
  const reloadReadyMs = await page.evaluate(() => window.athenaReadyMs);
  check((await page.textContent('#device')).trim() === device, 'the device survives a reload');
  for (const c of [...contents, cli]) {
    await page.waitForFunction((c) => [...document.querySelectorAll('#local-list .content')].some((e) => e.textContent === c), c);
  }
  check(await page.locator('#local-list li[data-sync="pending"]').count() === 0, 'nothing pending after the reload');
  await checkEscaped(page, contents[2]);

  // 7. Reload with the network off: the service worker serves the page and
  // the core, IndexedDB the memories.
  await context.setOffline(true);
  await page.reload({ waitUntil: 'domcontentloaded' });
  await page.waitForSelector('body[data-ready="true"]');
  const offlineReadyMs = await page.evaluate(() => window.athenaReadyMs);
  check(await page.locator('#local-list li').count() === 4, 'four memories after an offline reload');
  await page.fill('#recall-query', 'banana');
  await page.press('#recall-query', 'Enter');
  await page.waitForFunction(() => (document.querySelector('#recall-results li .content') || {}).textContent?.includes('Banana bread'));
  await context.setOffline(false);
  await waitSync(page, 'connected', 0);

  // 8. Local recall over 5,000 memories (a separate in-memory store).
  const bench = await page.evaluate(() => window.athenaTest.bench());
  log('bench:', JSON.stringify(bench));

  check(problems.length === 0, 'no page errors or CSP violations: ' + problems.join('; '));
  emit('done', { ready_ms: readyMs, reload_ready_ms: reloadReadyMs, offline_reload_ready_ms: offlineReadyMs, bench, screenshot });
}

async function waitSync(page, state, pending) {
  await page.waitForFunction(([s, p]) => {
    const c = document.querySelector('#sync-card');
    return c.dataset.state === s && c.dataset.pending === String(p);
  }, [state, pending]);
}

async function checkEscaped(page, content) {
  await page.waitForFunction((c) => [...document.querySelectorAll('#local-list .content')].some((e) => e.textContent === c), content);
  const r = await page.evaluate((c) => ({
    xss: window.__xss,
    scripts: document.querySelectorAll('main script, main img').length,
    shownLocal: [...document.querySelectorAll('#local-list .content')].some((e) => e.textContent === c),
    shownServer: [...document.querySelectorAll('#server-list .content')].some((e) => e.textContent === c),
  }), content);
  check(r.xss === undefined, 'the <script> content did not run');
  check(r.scripts === 0, 'no script or img element was created from content');
  check(r.shownLocal, 'the <script> content is shown as text');
  return r;
}

try {
  await main();
  await context.close();
  rmSync(profile, { recursive: true, force: true });
  process.exit(0);
} catch (err) {
  console.error('[e2e] FAIL:', err && err.stack || err);
  if (context) {
    try {
      mkdirSync(artifacts, { recursive: true });
      const p = context.pages()[0];
      if (p) await p.screenshot({ path: join(artifacts, 'browser-demo-failure.png'), fullPage: true });
    } catch {}
    await context.close().catch(() => {});
  }
  rmSync(profile, { recursive: true, force: true });
  process.exit(1);
}
