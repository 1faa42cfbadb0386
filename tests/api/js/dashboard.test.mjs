// The dashboard in a real browser: Debian's Chromium, headless, driven by
// playwright-core. The page loads offline (no request leaves 127.0.0.1),
// shows every node of /v1/cluster with its layer range, sends a chat message
// and shows the streamed answer. A screenshot is saved to $SCREENSHOT.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { env, startProcess, startServer } from './server.mjs';
import { launchBrowser, watchedPage } from './browser.mjs';


let server;
let browser;

before(async () => {
  server = await startServer(env('COLONY_STORIES'), ['--parallel', '2', '-c', '1024']);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  assert.equal(await server?.stop(), 0);
});

test('dashboard shows the cluster and streams a chat answer', async () => {
  const { page, foreign, consoleErrors } = await watchedPage(browser.context, server.url);

  await page.goto(server.url + '/');
  await assert.doesNotReject(page.waitForSelector('[data-testid="node"]', { timeout: 15000 }));

  // every node of /v1/cluster is drawn, with its layer range
  const cluster = await (await fetch(server.url + '/v1/cluster')).json();
  const nodes = page.locator('[data-testid="node"]');
  assert.equal(await nodes.count(), cluster.nodes.length);
  for (let i = 0; i < cluster.nodes.length; i++) {
    const n = cluster.nodes[i];
    const card = nodes.nth(i);
    assert.match(await card.textContent(), new RegExp(n.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    const layers = (await card.locator('[data-testid="node-layers"]').textContent()).trim();
    assert.equal(layers, `${n.layers.first}–${n.layers.last - 1} (${n.layers.last - n.layers.first})`);
    assert.equal((await card.locator('[data-testid="node-state"]').textContent()).trim(), 'ready');
  }
  assert.equal(await page.locator('[data-testid="segment"]').count(), cluster.nodes.length);
  assert.match(await page.locator('[data-testid="model-name"]').textContent(), /stories260K-f32/);
  await page.waitForFunction(() => document.querySelector('#status-text').textContent.startsWith('ok'));

  // chat: stories260K has no chat template, so auto mode falls back to completions
  await page.fill('#max-tokens', '48');
  await page.fill('#temperature', '0');
  await page.fill('[data-testid="prompt"]', 'Once upon a time');
  await page.click('[data-testid="send"]');
  const answer = page.locator('[data-testid="msg-assistant"]').last();
  await page.waitForSelector('[data-testid="msg-assistant"][data-done="true"]', { timeout: 30000 });
  // the message is the streamed answer (its text) and then a line of meta data
  const text = await answer.evaluate((e) => [...e.childNodes]
    .filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.textContent).join(''));
  const meta = await answer.locator('.meta').textContent();
  assert.ok(text.length > 20, `an answer was streamed: "${text}"`);
  assert.equal(await page.locator('[data-testid="msg-user"]').count(), 1);
  assert.equal(await page.locator('.msg.error').count(), 0, 'no error message');

  // the answer is the API's own greedy completion, whole
  const api = await (await fetch(server.url + '/v1/completions', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt: 'Once upon a time', max_tokens: 48, temperature: 0, top_p: 0.95 }),
  })).json();
  assert.equal(text, api.choices[0].text);
  assert.ok(meta.startsWith(`${api.choices[0].finish_reason} · ${api.usage.completion_tokens} tokens`),
    `meta line "${meta}" vs ${JSON.stringify(api.usage)}`);

  // the cluster view refreshes: tokens/s reflects the generation
  await page.waitForFunction(() => Number(document.querySelector('[data-testid="node-tps"]').textContent) > 0,
    null, { timeout: 5000 });

  await page.screenshot({ path: process.env.SCREENSHOT || 'dashboard.png', fullPage: true });
  assert.deepEqual(foreign, [], 'the page loads nothing from outside the server');
  assert.deepEqual(consoleErrors, []);
});

test('blocks skipped with --skip-layers are marked on the layer bar', async () => {
  const skipping = await startServer(env('COLONY_STORIES'), ['--parallel', '1', '-c', '256', '--skip-layers', '1,3']);
  try {
    const cluster = await (await fetch(skipping.url + '/v1/cluster')).json();
    assert.deepEqual(cluster.model.skip_layers, [1, 3]);
    const page = await browser.context.newPage();
    await page.goto(skipping.url + '/');
    await page.waitForSelector('[data-testid="segment"]', { timeout: 15000 });
    const marks = page.locator('[data-testid="skipped-block"]');
    assert.equal(await marks.count(), 2);
    const seen = [];
    for (let i = 0; i < 2; i++) {
      seen.push([await marks.nth(i).getAttribute('title'), await marks.nth(i).evaluate((e) => e.style.left)]);
    }
    seen.sort();
    assert.deepEqual(seen, [['block 1 skipped (--skip-layers)', '20%'], ['block 3 skipped (--skip-layers)', '60%']]);
    // the whole model's node is still one segment
    assert.equal(await page.locator('[data-testid="segment"]').count(), 1);
    await page.close();
  } finally {
    assert.equal(await skipping.stop(), 0);
  }
});

test('a three-node cluster: one segment and one card per node, loading progress shown', async () => {
  // colony-cluster-demo: generation on this machine, /v1/cluster describing three nodes
  const demo = await startProcess(env('COLONY_CLUSTER_DEMO'), [env('COLONY_STORIES')]);
  try {
    const page = await browser.context.newPage();
    await page.goto(demo.url + '/');
    await page.waitForSelector('[data-testid="node"]:nth-child(3)', { timeout: 15000 });
    const cluster = await (await fetch(demo.url + '/v1/cluster')).json();
    assert.equal(cluster.nodes.length, 3);
    const cards = page.locator('[data-testid="node"]');
    assert.equal(await cards.count(), 3);
    const segments = page.locator('[data-testid="segment"]');
    assert.equal(await segments.count(), 3);
    for (let i = 0; i < 3; i++) {
      const n = cluster.nodes[i];
      const range = `${n.layers.first}–${n.layers.last - 1}`;
      assert.equal((await cards.nth(i).locator('[data-testid="node-layers"]').textContent()).trim(),
        `${range} (${n.layers.last - n.layers.first})`);
      assert.equal((await segments.nth(i).textContent()).trim(), `${n.name} · ${range}`);
      // segment widths follow the layer counts
      const grow = await segments.nth(i).evaluate((e) => Number(e.style.flexGrow));
      assert.equal(grow, n.layers.last - n.layers.first);
    }
    assert.equal((await cards.nth(2).locator('[data-testid="node-state"]').textContent()).trim(), 'loading 60%');
    assert.match(await cards.nth(1).textContent(), /4\.2 ms/);
    assert.match(await cards.nth(1).textContent(), /78 %/);
    // chat still works through the demo server
    await page.fill('#temperature', '0');
    await page.fill('#max-tokens', '40');
    await page.fill('[data-testid="prompt"]', 'Lily and Tom went');
    await page.click('[data-testid="send"]');
    await page.waitForSelector('[data-testid="msg-assistant"][data-done="true"]', { timeout: 30000 });
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="node-tps"]').textContent) > 0,
      null, { timeout: 5000 });
    const shot = (process.env.SCREENSHOT || 'dashboard.png').replace(/\.png$/, '-3-nodes.png');
    await page.screenshot({ path: shot, fullPage: true });
  } finally {
    assert.equal(await demo.stop(), 0);
  }
});
