// The official `openai` npm package against a real three-node cluster on
// this machine (`colony run --workers 2`: a coordinator and two workers over
// CURVE) serving stories260K: the model list, completions whole and streamed
// (equal to single-process `colony generate`), concurrent streams, errors,
// and the cluster view behind the dashboard.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { assertLayersCoverModel, env, startCluster } from './server.mjs';

let OpenAI;
try {
  ({ default: OpenAI } = await import('openai'));
} catch (e) {
  throw new Error(`the 'openai' package is missing: run 'npm ci' in tests/api/js (${e.message})`);
}

const MODEL = 'stories260K-f32';
let cluster;

before(async () => {
  cluster = await startCluster(env('COLONY_STORIES'), ['--parallel', '4', '-c', '4096']);
});

after(async () => {
  assert.equal(await cluster?.stop(), 0, 'colony run exits cleanly on SIGTERM');
});

function client(opts = {}) {
  return new OpenAI({ baseURL: cluster.url + '/v1', apiKey: 'unused', maxRetries: 0, timeout: 60000, ...opts });
}

async function streamedText(params) {
  const stream = await client().completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.text;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  return { text, finish, usage };
}

test('the cluster has three ready nodes that split the layers', async () => {
  const c = await (await fetch(cluster.url + '/v1/cluster')).json();
  assert.equal(c.status, 'ok');
  assert.equal(c.nodes.length, 3);
  assert.deepEqual(c.nodes.map((n) => n.role), ['coordinator', 'worker', 'worker']);
  assertLayersCoverModel(assert, c);
});

test('models.list returns the served model', async () => {
  const ids = [];
  for await (const m of await client().models.list()) ids.push(m.id);
  assert.deepEqual(ids, [MODEL]);
});

test('completions through three stages equal colony generate, whole and streamed', async () => {
  const prompt = 'Once upon a time';
  const n = 32;
  const reference = execFileSync(env('COLONY_BIN'),
    ['generate', '-m', env('COLONY_STORIES'), '-p', prompt, '-n', String(n), '--temp', '0', '-t', '1'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const params = { model: MODEL, prompt, max_tokens: n, temperature: 0 };
  const whole = await client().completions.create(params);
  assert.equal(whole.object, 'text_completion');
  assert.equal(prompt + whole.choices[0].text + '\n', reference);
  assert.equal(whole.usage.total_tokens, whole.usage.prompt_tokens + whole.usage.completion_tokens);

  const streamed = await streamedText(params);
  assert.equal(streamed.text, whole.choices[0].text);
  assert.equal(streamed.finish, whole.choices[0].finish_reason);
  assert.deepEqual(streamed.usage, whole.usage);
});

test('concurrent streams each get their own greedy text', async () => {
  const prompts = ['The little dog', 'Lily and Tom went', 'One day, a bird', 'Mom said', 'Tim liked to', 'The sun was'];
  const alone = [];
  for (const p of prompts) alone.push((await streamedText({ model: MODEL, prompt: p, max_tokens: 24, temperature: 0 })).text);
  const together = await Promise.all(prompts.map((p) => streamedText({ model: MODEL, prompt: p, max_tokens: 24, temperature: 0 })));
  assert.deepEqual(together.map((r) => r.text), alone);
});

test('errors: chat without a template 400, unknown model 404, bad field 400; still serving', async () => {
  const c = client();
  await assert.rejects(
    c.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }),
    (e) => e instanceof OpenAI.BadRequestError && e.code === 'no_chat_template',
  );
  await assert.rejects(
    c.completions.create({ model: 'gpt-4o', prompt: 'x' }),
    (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found' && e.param === 'model',
  );
  await assert.rejects(
    c.completions.create({ model: MODEL, prompt: 'x', temperature: 9 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'temperature',
  );
  const ok = await c.completions.create({ model: MODEL, prompt: 'Once', max_tokens: 2 });
  assert.equal(ok.choices.length, 1);
});
