// The dashboard of a real three-node cluster (`colony run --workers 2`
// serving stories260K) in Debian's Chromium, headless, driven by
// playwright-core: the page shows every node with its layer range and link,
// sends a message (stories260K has no chat template, so the page uses
// completions) and shows the streamed answer, which equals the API's own
// greedy completion. The screenshot goes to $SCREENSHOT_CLUSTER.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { env, startCluster } from './server.mjs';
import { launchBrowser, watchedPage } from './browser.mjs';


let cluster;
let browser;

before(async () => {
  cluster = await startCluster(env('COLONY_STORIES'), ['--parallel', '2', '-c', '2048']);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  assert.equal(await cluster?.stop(), 0);
});

test('the dashboard of a three-node cluster shows every node and streams an answer', async () => {
  const { page, foreign, consoleErrors } = await watchedPage(browser.context, cluster.url);

  await page.goto(cluster.url + '/');
  await page.waitForSelector('[data-testid="node"]:nth-child(3)', { timeout: 15000 });
  await page.waitForFunction(() => document.querySelector('#status-text').textContent.startsWith('ok'));
  // the workers' link round trips have arrived (they answer heartbeats every second)
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="node"]')].slice(1)
    .every((card) => /\d ms/.test(card.textContent)), null, { timeout: 10000 });

  const c = await (await fetch(cluster.url + '/v1/cluster')).json();
  assert.equal(c.nodes.length, 3);
  const cards = page.locator('[data-testid="node"]');
  assert.equal(await cards.count(), 3);
  const segments = page.locator('[data-testid="segment"]');
  assert.equal(await segments.count(), 3);
  for (let i = 0; i < 3; i++) {
    const n = c.nodes[i];
    const card = cards.nth(i);
    assert.match(await card.textContent(), new RegExp(n.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    const range = `${n.layers.first}–${n.layers.last - 1}`;
    assert.equal((await card.locator('[data-testid="node-layers"]').textContent()).trim(),
      `${range} (${n.layers.last - n.layers.first})`);
    assert.equal((await card.locator('[data-testid="node-state"]').textContent()).trim(), 'ready');
    assert.equal((await segments.nth(i).textContent()).trim(), `${n.name} · ${range}`);
  }
  assert.deepEqual(c.nodes.map((n) => n.role), ['coordinator', 'worker', 'worker']);
  // every card shows its node's compute threads (a worker's come with its heartbeat answers)
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="node"]')]
    .every((card) => card.querySelector('[data-testid="node-threads"]')), null, { timeout: 10000 });
  const view = await (await fetch(cluster.url + '/v1/cluster')).json();
  for (let i = 0; i < 3; i++) {
    const t = view.nodes[i].threads;
    assert.equal(t.n, 1, JSON.stringify(t));  // colony run -t 1 (server.mjs)
    assert.equal(t.thermal_limited, false);
    const want = `${t.n}` + (t.cores ? ` on cores ${t.cores}` : '');
    assert.equal((await cards.nth(i).locator('[data-testid="node-threads"]').textContent()).trim(), want);
  }
  assert.match(await page.locator('[data-testid="model-name"]').textContent(), /stories260K-f32/);

  // a message: no chat template, so the page falls back to completions
  await page.fill('#max-tokens', '48');
  await page.fill('#temperature', '0');
  await page.fill('[data-testid="prompt"]', 'Once upon a time');
  await page.click('[data-testid="send"]');
  await page.waitForSelector('[data-testid="msg-assistant"][data-done="true"]', { timeout: 30000 });
  const answer = page.locator('[data-testid="msg-assistant"]').last();
  const text = await answer.evaluate((e) => [...e.childNodes]
    .filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.textContent).join(''));
  const meta = await answer.locator('.meta').textContent();
  assert.ok(text.length > 20, `an answer was streamed: "${text}"`);
  assert.equal(await page.locator('.msg.error').count(), 0, 'no error message');
  const api = await (await fetch(cluster.url + '/v1/completions', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt: 'Once upon a time', max_tokens: 48, temperature: 0 }),
  })).json();
  // the message holds the answer, whole, then a line of meta data (finish reason, tokens, speed)
  assert.equal(text, api.choices[0].text);
  assert.ok(meta.startsWith(`${api.choices[0].finish_reason} · ${api.usage.completion_tokens} tokens`),
    `meta line "${meta}" vs ${JSON.stringify(api.usage)}`);

  // the cluster view refreshes: the nodes show the tokens that went through them
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="node-tps"]')]
    .every((e) => Number(e.textContent) > 0), null, { timeout: 5000 });

  await page.screenshot({ path: process.env.SCREENSHOT_CLUSTER || 'dashboard-cluster.png', fullPage: true });
  assert.deepEqual(foreign, [], 'the page loads nothing from outside the server');
  assert.deepEqual(consoleErrors, []);
});

test('a worker that dies shows as a recovery on the dashboard, and the cluster serves on', async () => {
  const { page, foreign, consoleErrors } = await watchedPage(browser.context, cluster.url);
  await page.goto(cluster.url + '/');
  await page.waitForSelector('[data-testid="node"]:nth-child(3)', { timeout: 15000 });
  // a worker process of colony run (its children: serve and two joins)
  const children = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(cluster.pid)])
    .toString().split('\n').filter((l) => / join /.test(l));
  assert.equal(children.length, 2, children.join('\n'));
  process.kill(Number(children[0].trim().split(/\s+/)[0]), 'SIGKILL');
  // colony run starts it again; the coordinator records the loss and the new plan
  await page.waitForFunction(() => /took over in \d+ ms/.test(
    document.querySelector('[data-testid="recoveries"]')?.textContent || ''), null, { timeout: 30000 });
  const line = await page.locator('[data-testid="recoveries"] li').first().textContent();
  assert.match(line, /lost worker-\d .*seen after \d+ ms, (spare|rejoined|replan) took over in \d+ ms/);
  const r = await (await fetch(cluster.url + '/v1/completions', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt: 'Once upon a time', max_tokens: 8, temperature: 0 }),
  })).json();
  assert.equal(r.usage.completion_tokens, 8);
  assert.deepEqual(foreign, [], 'the page loads nothing from outside the server');
  assert.deepEqual(consoleErrors, []);
});
