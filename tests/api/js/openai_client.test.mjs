// The official `openai` npm package against colony-serve-local:
// completions (stories260K, no chat template) and chat (a tiny synthetic
// qwen2 with ChatML), streaming and not, the model list, and errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { env, startServer } from './server.mjs';

let OpenAI;
try {
  ({ default: OpenAI } = await import('openai'));
} catch (e) {
  throw new Error(`the 'openai' package is missing: run 'npm ci' in tests/api/js (${e.message})`);
}

let stories;
let chat;

before(async () => {
  [stories, chat] = await Promise.all([
    startServer(env('COLONY_STORIES'), ['--parallel', '4', '-c', '2048']),
    startServer(env('COLONY_CHAT_MODEL'), ['--parallel', '2', '-c', '1024', '--alias', 'tiny-chat']),
  ]);
});

after(async () => {
  assert.equal(await stories?.stop(), 0, 'stories server exits cleanly on SIGTERM');
  assert.equal(await chat?.stop(), 0, 'chat server exits cleanly on SIGTERM');
});

function client(server, opts = {}) {
  return new OpenAI({ baseURL: server.url + '/v1', apiKey: 'unused', maxRetries: 0, timeout: 60000, ...opts });
}

test('models.list returns the served model', async () => {
  const list = await client(stories).models.list();
  const ids = [];
  for await (const m of list) ids.push(m.id);
  assert.deepEqual(ids, ['stories260K-f32']);
  const one = await client(stories).models.retrieve('stories260K-f32');
  assert.equal(one.object, 'model');
  assert.equal(one.owned_by, 'colony');
});

test('completions.create, whole and streamed, agree (greedy)', async () => {
  const params = { model: 'stories260K-f32', prompt: 'Once upon a time', max_tokens: 24, temperature: 0 };
  const whole = await client(stories).completions.create(params);
  assert.equal(whole.object, 'text_completion');
  assert.equal(whole.choices.length, 1);
  assert.ok(whole.choices[0].text.length > 0);
  assert.ok(['stop', 'length'].includes(whole.choices[0].finish_reason));
  assert.equal(whole.usage.total_tokens, whole.usage.prompt_tokens + whole.usage.completion_tokens);

  const stream = await client(stories).completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
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
  assert.equal(text, whole.choices[0].text);
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.deepEqual(usage, whole.usage);
});

test('chat.completions.create on a model with a chat template', async () => {
  const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say hello.' }];
  const c = client(chat);
  const whole = await c.chat.completions.create({ model: 'tiny-chat', messages, max_tokens: 12, temperature: 0, seed: 1 });
  assert.equal(whole.object, 'chat.completion');
  assert.equal(whole.model, 'tiny-chat');
  assert.equal(whole.choices[0].message.role, 'assistant');
  assert.equal(typeof whole.choices[0].message.content, 'string');
  assert.ok(whole.usage.prompt_tokens > 10, 'the ChatML rendering of two messages');
  assert.ok(whole.usage.completion_tokens >= 1 && whole.usage.completion_tokens <= 12);

  const stream = await c.chat.completions.create({
    model: 'tiny-chat', messages, max_tokens: 12, temperature: 0, seed: 1, stream: true,
  });
  let content = '';
  let role = null;
  let finish = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    const d = chunk.choices[0];
    if (d.delta.role) role = d.delta.role;
    if (d.delta.content) content += d.delta.content;
    if (d.finish_reason) finish = d.finish_reason;
  }
  assert.equal(role, 'assistant');
  assert.equal(content, whole.choices[0].message.content);
  assert.equal(finish, whole.choices[0].finish_reason);
});

test('chat on a model without a template is a 400 the client raises', async () => {
  await assert.rejects(
    client(stories).chat.completions.create({ model: 'stories260K-f32', messages: [{ role: 'user', content: 'hi' }] }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.code === 'no_chat_template',
  );
});

test('errors: unknown model 404, bad field 400 with param, n > 8 400', async () => {
  const c = client(stories);
  await assert.rejects(
    c.completions.create({ model: 'gpt-4o', prompt: 'x' }),
    (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found' && e.param === 'model',
  );
  await assert.rejects(
    c.completions.create({ model: 'stories260K-f32', prompt: 'x', temperature: 9 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'temperature' && /temperature/.test(e.message),
  );
  await assert.rejects(
    c.completions.create({ model: 'stories260K-f32', prompt: 'x', n: 9 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'n',
  );
  // and the server still answers
  const ok = await c.completions.create({ model: 'stories260K-f32', prompt: 'Once', max_tokens: 2 });
  assert.equal(ok.choices.length, 1);
});

test('an API key is required when the server has one', async () => {
  const keyed = await startServer(env('COLONY_STORIES'), ['--parallel', '1', '-c', '256'], { COLONY_API_KEY: 'k-123' });
  try {
    await assert.rejects(
      client(keyed, { apiKey: 'wrong' }).models.list(),
      (e) => e instanceof OpenAI.AuthenticationError && e.status === 401,
    );
    const list = await client(keyed, { apiKey: 'k-123' }).models.list();
    assert.equal(list.data.length, 1);
  } finally {
    assert.equal(await keyed.stop(), 0);
  }
});
