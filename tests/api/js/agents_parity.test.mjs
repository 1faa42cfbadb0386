// The agent features give the same results through a three-stage cluster as
// on one node: greedy tool calls, JSON-schema output, logprobs, embeddings,
// the Responses and Ollama endpoints. Both servers run the same engine
// bit-exactly (--batch-invariant on both, hidden states sent as f32), so the
// texts must be identical and the numbers equal to float rounding.
// Environment: COLONY_BIN, COLONY_AGENT_MODEL (a synthetic Qwen2.5 with 3
// blocks and the real Qwen2.5 template; see agents.test.mjs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { env, startProcess } from './server.mjs';

const { default: OpenAI } = await import('openai');

let one;
let three;
let dir;
let MODEL;

before(async () => {
  const model = env('COLONY_AGENT_MODEL');
  dir = mkdtempSync(path.join(tmpdir(), 'colony-parity-'));
  const common = ['--api-port', '0', '-t', '1', '--parallel', '4', '-c', '4096', '--batch-invariant'];
  [one, three] = await Promise.all([
    startProcess(env('COLONY_BIN'), ['serve', '-m', model, '--host', '127.0.0.1', '--port', '0', '--no-beacon',
      '--config-dir', path.join(dir, 'config'), '--cache-dir', path.join(dir, 'cache'), ...common]),
    startProcess(env('COLONY_BIN'), ['run', '-m', model, '--workers', '2', '--split', '0:1,1:2,2:3',
      '--wire-type', 'f32', ...common]),
  ]);
  MODEL = (await (await fetch(one.url + '/v1/models')).json()).data[0].id;
});

after(async () => {
  try {
    await Promise.all([one?.stop(), three?.stop()]);
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
});

const client = (srv) => new OpenAI({ baseURL: srv.url + '/v1', apiKey: 'unused', maxRetries: 0 });
const both = (fn) => Promise.all([fn(one), fn(three)]);
const weather = [{
  type: 'function',
  function: {
    name: 'get_weather',
    parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 12 } }, required: ['city'] },
  },
}];

test('a required tool call has the same name and arguments', { timeout: 120000 }, async () => {
  const [a, b] = await both((s) => client(s).chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'Weather in Paris?' }], tools: weather,
    tool_choice: 'required', temperature: 0, max_tokens: 256,
  }));
  const ca = a.choices[0].message.tool_calls;
  const cb = b.choices[0].message.tool_calls;
  assert.ok(ca?.length >= 1, JSON.stringify(a));
  assert.deepEqual(cb.map((c) => [c.function.name, c.function.arguments]),
    ca.map((c) => [c.function.name, c.function.arguments]));
  assert.equal(b.usage.completion_tokens, a.usage.completion_tokens);
});

test('json_schema output and its logprobs are the same', { timeout: 120000 }, async () => {
  const schema = {
    type: 'object', properties: { name: { type: 'string', maxLength: 8 }, age: { type: 'integer' } },
    required: ['name', 'age'], additionalProperties: false,
  };
  const [a, b] = await both((s) => client(s).chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'A person.' }], temperature: 0, max_tokens: 256,
    response_format: { type: 'json_schema', json_schema: { name: 'p', strict: true, schema } },
    logprobs: true, top_logprobs: 3,
  }));
  assert.equal(b.choices[0].message.content, a.choices[0].message.content);
  const la = a.choices[0].logprobs.content;
  const lb = b.choices[0].logprobs.content;
  assert.equal(lb.length, la.length);
  for (let i = 0; i < la.length; i++) {
    assert.equal(lb[i].token, la[i].token);
    assert.ok(Math.abs(lb[i].logprob - la[i].logprob) < 1e-4, `token ${i}: ${lb[i].logprob} vs ${la[i].logprob}`);
    assert.deepEqual(lb[i].top_logprobs.map((t) => t.token), la[i].top_logprobs.map((t) => t.token));
  }
});

test('embeddings are the same', { timeout: 120000 }, async () => {
  const input = ['hello world', 'a longer input about the weather in Paris'];
  const [a, b] = await both((s) => client(s).embeddings.create({ model: MODEL, input, encoding_format: 'float' }));
  for (let k = 0; k < input.length; k++) {
    const ea = a.data[k].embedding;
    const eb = b.data[k].embedding;
    assert.equal(eb.length, ea.length);
    const worst = Math.max(...ea.map((v, i) => Math.abs(v - eb[i])));
    assert.ok(worst < 1e-5, `input ${k}: largest difference ${worst}`);
  }
});

test('the Responses and Ollama endpoints give the same text', { timeout: 120000 }, async () => {
  const [ra, rb] = await both((s) => client(s).responses.create({
    model: MODEL, input: 'Say hi', max_output_tokens: 12, temperature: 0,
  }));
  assert.equal(rb.output_text, ra.output_text);
  const [oa, ob] = await both(async (s) => (await fetch(s.url + '/api/chat', {
    method: 'POST',
    body: JSON.stringify({
      model: MODEL, stream: false, format: 'json', messages: [{ role: 'user', content: 'hi' }],
      options: { num_predict: 48, temperature: 0 },
    }),
  })).json());
  assert.equal(ob.message.content, oa.message.content);
  assert.equal(ob.eval_count, oa.eval_count);
});
