// Agent-style clients against colony: tool calls, structured output,
// logprobs, n, embeddings and the Responses API through the official `openai`
// package, and the same features as the Vercel AI SDK
// (@ai-sdk/openai-compatible), LangChain.js (@langchain/openai) and the
// `ollama` package use them.
//
// Server: a three-node cluster on this machine (`colony run --workers 2`,
// one layer per stage: --split COLONY_AGENT_SPLIT, default 0:1,1:2,2:3), or
// with COLONY_AGENT_SINGLE=1 `colony serve` alone.
// Model (COLONY_AGENT_MODEL): a synthetic Qwen2.5 (random weights, the real
// Qwen2.5 tokenizer and chat template), e.g.
//   colony synth --preset qwen2.5-0.5b --layers 3 --embd 256 --heads 4 \
//     --kv-heads 2 --ff 512 --type Q8_0 -o agent-qwen.gguf
// Random weights write garbage text, so free text is only checked for shape;
// what a grammar constrains (tool calls, JSON) must be valid. Every string a
// schema asks for has a maxLength: a random model almost never picks a closing
// quote among the ~150k tokens a JSON string allows, so without a bound the
// constrained output would run into max_tokens. Even bounded, it can take
// many tokens: a character outside ASCII is often 2-4 byte tokens, and the
// JSON grammar lets up to ~20 white-space characters into every gap (greedy
// decoding of the random model likes them: a get_weather call took 75
// tokens), so constrained requests get max_tokens CONSTRAINED (256); they end
// where the grammar ends, and the cap only counts when something is wrong. A
// generic JSON object (json_object, ollama format "json") has no bound; cut
// short by max_tokens it must still be a valid prefix of an object.
// Environment: COLONY_BIN (colony), COLONY_AGENT_MODEL, COLONY_AGENT_SINGLE,
// COLONY_AGENT_SPLIT.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { assertLayersCoverModel, env, startProcess } from './server.mjs';
import { jsonObjectPrefix } from './json_prefix.mjs';

async function load(name) {
  try {
    return await import(name);
  } catch (e) {
    throw new Error(`the '${name}' package is missing: run 'npm ci' in tests/api/js (${e.message})`);
  }
}
const { default: OpenAI } = await load('openai');
const { generateObject, generateText, streamText, tool, Output } = await load('ai');
const { createOpenAICompatible } = await load('@ai-sdk/openai-compatible');
const { ChatOpenAI } = await load('@langchain/openai');
const { tool: langchainTool } = await load('@langchain/core/tools');
const { Ollama } = await load('ollama');
const { z } = await load('zod');

const SINGLE = process.env.COLONY_AGENT_SINGLE === '1';
const CONSTRAINED = 256; // max_tokens of grammar-constrained requests (see above)
// every check fails after 60 s (a request the server never answers)
const check = (name, fn) => test(name, { timeout: 60000 }, fn);
const SPLIT = process.env.COLONY_AGENT_SPLIT || '0:1,1:2,2:3';
let server;
let dir;
let MODEL;

before(async () => {
  const model = env('COLONY_AGENT_MODEL');
  dir = mkdtempSync(path.join(tmpdir(), 'colony-agents-'));
  if (SINGLE) {
    server = await startProcess(env('COLONY_BIN'), ['serve', '-m', model, '--host', '127.0.0.1', '--port', '0',
      '--api-port', '0', '--no-beacon', '-t', '1', '--parallel', '4', '-c', '4096',
      '--config-dir', path.join(dir, 'config'), '--cache-dir', path.join(dir, 'cache')]);
  } else {
    server = await startProcess(env('COLONY_BIN'), ['run', '-m', model, '--workers', '2', '--split', SPLIT,
      '--api-port', '0', '-t', '1', '--parallel', '4', '-c', '4096']);
  }
  const models = await (await fetch(server.url + '/v1/models')).json();
  MODEL = models.data[0].id;
});

after(async () => {
  try {
    assert.equal(await server?.stop(), 0, 'colony exits cleanly on SIGTERM');
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
});

function openai() {
  return new OpenAI({ baseURL: server.url + '/v1', apiKey: 'unused', maxRetries: 0, timeout: 30000 });
}

const WEATHER = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The current weather in a city',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string', maxLength: 12, description: 'the city name' } },
      required: ['city'],
      additionalProperties: false,
    },
  },
};
const PERSON = {
  type: 'object',
  properties: { name: { type: 'string', maxLength: 8 }, age: { type: 'integer' } },
  required: ['name', 'age'],
  additionalProperties: false,
};
const ASK_WEATHER = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'What is the weather like in Paris?' },
];
const HELLO = [{ role: 'user', content: 'Say hello.' }];

function assertPerson(obj) {
  assert.equal(typeof obj, 'object');
  assert.deepEqual(Object.keys(obj).sort(), ['age', 'name']);
  assert.equal(typeof obj.name, 'string');
  assert.ok(obj.name.length <= 8, `name ${JSON.stringify(obj.name)} longer than maxLength 8`);
  assert.equal(typeof obj.age, 'number');
}

// a JSON object, or (when generation stopped at the token limit) a valid
// beginning of one
function assertJsonObject(text, finish, lengthReason = 'length') {
  assert.ok(text.trimStart().startsWith('{'), `not a JSON object: ${JSON.stringify(text)}`);
  if (finish === lengthReason) {
    assert.notEqual(jsonObjectPrefix(text), 'invalid', `not the start of a JSON object: ${JSON.stringify(text)}`);
  } else {
    const v = JSON.parse(text);
    assert.ok(v !== null && typeof v === 'object' && !Array.isArray(v), `not an object: ${text}`);
  }
}

// Reads a streamed chat completion: content, tool calls (joined by index),
// finish reason and usage per choice.
async function readChatStream(stream) {
  const choices = [];
  let chunks = 0;
  let usage = null;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      const slot = (choices[c.index] ??= { content: '', toolCalls: [], finish: null, argumentDeltas: 0 });
      if (c.delta?.content) slot.content += c.delta.content;
      for (const tc of c.delta?.tool_calls ?? []) {
        const call = (slot.toolCalls[tc.index] ??= { id: '', name: '', arguments: '' });
        if (tc.id) call.id = tc.id;
        if (tc.function?.name) call.name += tc.function.name;
        if (tc.function?.arguments) {
          call.arguments += tc.function.arguments;
          slot.argumentDeltas++;
        }
      }
      if (c.finish_reason) slot.finish = c.finish_reason;
    }
  }
  return { chunks, choices, usage };
}

check('the server serves the synthetic model (three ready nodes unless COLONY_AGENT_SINGLE=1)', async () => {
  const c = await (await fetch(server.url + '/v1/cluster')).json();
  assert.equal(c.status, 'ok');
  assert.equal(c.nodes.length, SINGLE ? 1 : 3);
  assertLayersCoverModel(assert, c);
  const ids = [];
  for await (const m of await openai().models.list()) ids.push(m.id);
  assert.deepEqual(ids, [MODEL]);
});

// ---------------------------------------------------------------- openai npm

check('openai: tool_choice required calls get_weather; the tool result goes back and the answer streams', async () => {
  const c = openai();
  const first = await c.chat.completions.create({
    model: MODEL, messages: ASK_WEATHER, tools: [WEATHER], tool_choice: 'required', parallel_tool_calls: false,
    max_tokens: CONSTRAINED, temperature: 0,
  });
  const msg = first.choices[0].message;
  assert.equal(msg.role, 'assistant');
  assert.equal(first.choices[0].finish_reason, 'tool_calls');
  assert.ok(Array.isArray(msg.tool_calls) && msg.tool_calls.length >= 1, `no tool_calls: ${JSON.stringify(msg)}`);
  const call = msg.tool_calls[0];
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'get_weather');
  assert.equal(typeof call.id, 'string');
  assert.ok(call.id.length > 0);
  const args = JSON.parse(call.function.arguments);
  assert.equal(typeof args.city, 'string');

  const stream = await c.chat.completions.create({
    model: MODEL,
    messages: [
      ...ASK_WEATHER,
      { role: 'assistant', content: msg.content ?? null, tool_calls: msg.tool_calls },
      { role: 'tool', tool_call_id: call.id, content: JSON.stringify({ city: args.city, celsius: 21, sky: 'sunny' }) },
    ],
    tools: [WEATHER], max_tokens: 16, stream: true, stream_options: { include_usage: true },
  });
  const r = await readChatStream(stream);
  assert.ok(r.chunks > 1, `only ${r.chunks} chunks`);
  assert.equal(r.choices.length, 1);
  assert.ok(r.choices[0].finish, 'no finish_reason');
  assert.ok(r.usage, 'no usage chunk');
  assert.ok(r.usage.completion_tokens > 0 && r.usage.completion_tokens <= 16);
  // the call and its result are part of the second prompt
  assert.ok(r.usage.prompt_tokens > first.usage.prompt_tokens,
    `prompt_tokens ${r.usage.prompt_tokens} after the tool result, ${first.usage.prompt_tokens} before`);
});

check('openai: a named tool_choice streams the call; the argument deltas join into JSON', async () => {
  const stream = await openai().chat.completions.create({
    model: MODEL, messages: ASK_WEATHER, tools: [WEATHER],
    tool_choice: { type: 'function', function: { name: 'get_weather' } },
    max_tokens: CONSTRAINED, temperature: 0, stream: true,
  });
  const r = await readChatStream(stream);
  assert.equal(r.choices.length, 1);
  const choice = r.choices[0];
  assert.ok(['tool_calls', 'stop'].includes(choice.finish), `finish_reason ${choice.finish}`);
  assert.equal(choice.toolCalls.length, 1, JSON.stringify(choice.toolCalls));
  const call = choice.toolCalls[0];
  assert.equal(call.name, 'get_weather');
  assert.ok(call.id.length > 0);
  assert.ok(choice.argumentDeltas >= 1);
  const args = JSON.parse(call.arguments);
  assert.equal(typeof args.city, 'string');
});

check('openai: response_format json_schema (strict) gives an object of the schema', async () => {
  const r = await openai().chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'Invent a person. Answer in JSON.' }],
    response_format: { type: 'json_schema', json_schema: { name: 'person', strict: true, schema: PERSON } },
    max_tokens: CONSTRAINED, temperature: 0,
  });
  assert.equal(r.choices[0].finish_reason, 'stop', `content: ${r.choices[0].message.content}`);
  const obj = JSON.parse(r.choices[0].message.content);
  assertPerson(obj);
  assert.ok(Number.isInteger(obj.age), `age ${obj.age} is not an integer`);
});

check('openai: response_format json_object gives a JSON object', async () => {
  const r = await openai().chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'Describe a cat in JSON.' }],
    response_format: { type: 'json_object' }, max_tokens: 32, temperature: 0,
  });
  assertJsonObject(r.choices[0].message.content, r.choices[0].finish_reason);
});

check('openai: chat logprobs with top_logprobs 3 (greedy: the chosen token is the best)', async () => {
  const r = await openai().chat.completions.create({
    model: MODEL, messages: HELLO, max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 3,
  });
  const choice = r.choices[0];
  const content = choice.logprobs?.content;
  assert.ok(Array.isArray(content), `no logprobs.content: ${JSON.stringify(choice.logprobs)}`);
  assert.equal(content.length, r.usage.completion_tokens);
  for (const t of content) {
    assert.equal(typeof t.token, 'string');
    assert.ok(Number.isFinite(t.logprob) && t.logprob <= 0, `logprob ${t.logprob}`);
    assert.ok(Array.isArray(t.bytes) && t.bytes.every((b) => Number.isInteger(b) && b >= 0 && b < 256));
    assert.equal(t.top_logprobs.length, 3);
    for (let k = 0; k < 3; k++) {
      const alt = t.top_logprobs[k];
      assert.equal(typeof alt.token, 'string');
      assert.ok(Number.isFinite(alt.logprob) && alt.logprob <= 0);
      if (k > 0) assert.ok(alt.logprob <= t.top_logprobs[k - 1].logprob, 'top_logprobs not sorted descending');
    }
    assert.equal(t.logprob, t.top_logprobs[0].logprob);
    assert.equal(t.token, t.top_logprobs[0].token);
  }
  if (choice.finish_reason === 'length') {
    // every token is content: their bytes are the content's UTF-8
    assert.equal(Buffer.from(content.flatMap((t) => t.bytes)).toString('utf8'), choice.message.content);
  }
});

check('openai: completions logprobs 2 gives tokens, token_logprobs, top_logprobs, text_offset', async () => {
  const r = await openai().completions.create({ model: MODEL, prompt: 'Hello', max_tokens: 8, temperature: 0, logprobs: 2 });
  const lp = r.choices[0].logprobs;
  assert.ok(lp, 'no logprobs');
  const n = r.usage.completion_tokens;
  assert.ok(n > 0);
  for (const key of ['tokens', 'token_logprobs', 'top_logprobs', 'text_offset']) {
    assert.ok(Array.isArray(lp[key]), `${key} is not an array`);
    assert.equal(lp[key].length, n, `${key} has ${lp[key].length} entries for ${n} tokens`);
  }
  for (let i = 0; i < n; i++) {
    assert.equal(typeof lp.tokens[i], 'string');
    assert.ok(Number.isFinite(lp.token_logprobs[i]) && lp.token_logprobs[i] <= 0);
    const alts = Object.values(lp.top_logprobs[i]);
    // two tokens may decode to the same text (e.g. two halves of UTF-8 characters) and share a key
    assert.ok(alts.length >= 1 && alts.length <= 2, JSON.stringify(lp.top_logprobs[i]));
    assert.equal(lp.token_logprobs[i], Math.max(...alts), 'greedy: the chosen token is the most likely');
    assert.ok(Number.isInteger(lp.text_offset[i]) && lp.text_offset[i] >= 0);
    if (i > 0) assert.ok(lp.text_offset[i] >= lp.text_offset[i - 1], 'text_offset decreases');
  }
  if (r.choices[0].finish_reason === 'length') assert.equal(lp.tokens.join(''), r.choices[0].text);
});

check('openai: n 2 gives choices 0 and 1, equal at temperature 0', async () => {
  const r = await openai().chat.completions.create({ model: MODEL, messages: HELLO, n: 2, max_tokens: 8, temperature: 0 });
  assert.equal(r.choices.length, 2);
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1]);
  assert.equal(r.choices[0].message.content, r.choices[1].message.content);
  // usage counts the tokens of every choice
  if (r.choices.every((c) => c.finish_reason === 'length')) assert.equal(r.usage.completion_tokens, 16);
  else assert.ok(r.usage.completion_tokens >= 2);
});

check('openai: n 2 streamed gives both indexes, equal at temperature 0', async () => {
  const stream = await openai().chat.completions.create({
    model: MODEL, messages: HELLO, n: 2, max_tokens: 8, temperature: 0, stream: true,
  });
  const r = await readChatStream(stream);
  assert.equal(r.choices.length, 2);
  assert.ok(r.choices[0] && r.choices[1], 'a choice index never appeared');
  assert.ok(r.choices[0].finish && r.choices[1].finish);
  assert.equal(r.choices[0].content, r.choices[1].content);
});

function assertEmbeddings(data) {
  assert.equal(data.length, 2);
  assert.deepEqual(data.map((d) => d.index), [0, 1]);
  const [a, b] = data.map((d) => d.embedding);
  assert.ok(a.length > 0);
  assert.equal(a.length, b.length);
  for (const v of [a, b]) {
    assert.ok(v.every(Number.isFinite), 'an embedding has a non-finite number');
    const norm = Math.hypot(...v);
    assert.ok(Math.abs(norm - 1) < 1e-3, `L2 norm ${norm}`);
  }
  assert.notDeepEqual(a, b);
  return [a, b];
}

check('openai: embeddings of two inputs (the SDK asks for base64)', async () => {
  const r = await openai().embeddings.create({ model: MODEL, input: ['hello', 'world'] });
  assert.equal(r.object, 'list');
  assertEmbeddings(r.data);
  assert.ok(r.usage.prompt_tokens >= 2);
});

check('openai: embeddings as floats equal the base64 ones', async () => {
  const c = openai();
  const asFloat = await c.embeddings.create({ model: MODEL, input: ['hello', 'world'], encoding_format: 'float' });
  const asBase64 = await c.embeddings.create({ model: MODEL, input: ['hello', 'world'] });
  const [fa] = assertEmbeddings(asFloat.data);
  const [ba] = assertEmbeddings(asBase64.data);
  assert.equal(fa.length, ba.length);
  for (let i = 0; i < fa.length; i++) assert.ok(Math.abs(fa[i] - ba[i]) < 1e-6, `element ${i}: ${fa[i]} vs ${ba[i]}`);
});

function assertResponseStatus(r) {
  if (r.status === 'incomplete') {
    // the Responses API's word for stopping at max_output_tokens
    assert.equal(r.incomplete_details?.reason, 'max_output_tokens');
  } else {
    assert.equal(r.status, 'completed');
  }
}

check('openai: responses.create whole', async () => {
  const r = await openai().responses.create({ model: MODEL, input: 'Say hi', max_output_tokens: 8 });
  assert.equal(r.object, 'response');
  assertResponseStatus(r);
  assert.equal(typeof r.output_text, 'string');
  assert.ok(r.output.some((o) => o.type === 'message' && o.role === 'assistant'));
  assert.ok(r.usage, 'no usage');
  assert.ok(r.usage.input_tokens > 0);
  assert.ok(r.usage.output_tokens > 0 && r.usage.output_tokens <= 8);
  assert.equal(r.usage.total_tokens, r.usage.input_tokens + r.usage.output_tokens);
});

check('openai: responses.create streamed: created, output_text deltas, completed', async () => {
  const stream = await openai().responses.create({ model: MODEL, input: 'Say hi', max_output_tokens: 8, stream: true });
  const types = [];
  let text = '';
  let final = null;
  for await (const ev of stream) {
    types.push(ev.type);
    if (ev.type === 'response.output_text.delta') text += ev.delta;
    if (ev.type === 'response.completed' || ev.type === 'response.incomplete') final = ev.response;
  }
  assert.equal(types[0], 'response.created');
  assert.ok(types.includes('response.output_text.delta'), types.join(' '));
  assert.ok(final, `no response.completed: ${types.join(' ')}`);
  assert.ok(['response.completed', 'response.incomplete'].includes(types.at(-1)));
  assertResponseStatus(final);
  assert.equal(types.at(-1), final.status === 'completed' ? 'response.completed' : 'response.incomplete');
  const finalText = final.output.filter((o) => o.type === 'message')
    .flatMap((o) => o.content).filter((p) => p.type === 'output_text').map((p) => p.text).join('');
  assert.equal(text, finalText);
});

// ----------------------------------------------------------- Vercel AI SDK

function aiModel() {
  const provider = createOpenAICompatible({
    name: 'colony', baseURL: server.url + '/v1', apiKey: 'unused',
    supportsStructuredOutputs: true, // response_format json_schema (else json_object and no schema)
    includeUsage: true,
  });
  return provider.chatModel(MODEL);
}
// age is a JSON number (not an integer): llama.cpp's schema grammar allows a
// 16-digit exponent (-476E66666666666 parses to -Infinity, which zod refuses);
// colony bounds exponents to 2 digits (chat_format.cpp), which this checks.
const ZPerson = z.object({ name: z.string().max(8), age: z.number() });

check('ai sdk: generateObject with a zod schema', async () => {
  const r = await generateObject({
    model: aiModel(), schema: ZPerson, prompt: 'Invent a person.', maxOutputTokens: CONSTRAINED, temperature: 0, maxRetries: 0,
  });
  assertPerson(ZPerson.parse(r.object));
});

check('ai sdk: generateText with output Output.object (the v7 replacement of generateObject)', async () => {
  const r = await generateText({
    model: aiModel(), output: Output.object({ schema: ZPerson }), prompt: 'Invent a person.',
    maxOutputTokens: CONSTRAINED, temperature: 0, maxRetries: 0,
  });
  assertPerson(ZPerson.parse(r.output));
});

check('ai sdk: generateText with a tool and toolChoice required', async () => {
  const r = await generateText({
    model: aiModel(), prompt: 'What is the weather like in Paris?', toolChoice: 'required',
    tools: {
      get_weather: tool({
        description: 'The current weather in a city',
        inputSchema: z.object({ city: z.string().max(12) }),
      }),
    },
    maxOutputTokens: CONSTRAINED, temperature: 0, maxRetries: 0,
  });
  assert.ok(r.toolCalls.length >= 1, `no tool calls; text ${JSON.stringify(r.text)}`);
  const call = r.toolCalls[0];
  assert.equal(call.toolName, 'get_weather');
  assert.notEqual(call.invalid, true, `invalid tool call: ${call.error}`);
  assert.equal(typeof call.input.city, 'string');
  assert.equal(r.finishReason, 'tool-calls');
});

check('ai sdk: streamText streams text and reports usage', async () => {
  const errors = [];
  const r = streamText({
    model: aiModel(), prompt: 'Tell me a story.', maxOutputTokens: 16, maxRetries: 0,
    onError: ({ error }) => errors.push(error),
  });
  let parts = 0;
  for await (const delta of r.textStream) {
    assert.equal(typeof delta, 'string');
    parts++;
  }
  assert.deepEqual(errors, []);
  assert.ok(parts >= 1);
  const usage = await r.usage;
  assert.equal(typeof usage.inputTokens, 'number');
  assert.equal(typeof usage.outputTokens, 'number');
  assert.ok(usage.inputTokens > 0);
  assert.ok(usage.outputTokens > 0 && usage.outputTokens <= 16);
  assert.ok(['length', 'stop'].includes(await r.finishReason));
});

// -------------------------------------------------------------- LangChain.js

function chatOpenAI(fields = {}) {
  return new ChatOpenAI({
    model: MODEL, apiKey: 'x', configuration: { baseURL: server.url + '/v1' },
    maxTokens: CONSTRAINED, temperature: 0, maxRetries: 0, timeout: 30000, ...fields,
  });
}

for (const choice of ['required', 'any']) {
  check(`langchain: bindTools with tool_choice "${choice}" calls get_weather`, async () => {
    const getWeather = langchainTool(async ({ city }) => `sunny in ${city}`, {
      name: 'get_weather', description: 'The current weather in a city',
      schema: z.object({ city: z.string().max(12) }),
    });
    const model = chatOpenAI().bindTools([getWeather], { tool_choice: choice, parallel_tool_calls: false });
    const msg = await model.invoke('What is the weather like in Paris?');
    assert.ok(msg.tool_calls?.length >= 1, `no tool_calls: ${JSON.stringify(msg.invalid_tool_calls)}`);
    assert.equal(msg.tool_calls[0].name, 'get_weather');
    assert.equal(typeof msg.tool_calls[0].args.city, 'string');
    assert.ok(msg.tool_calls[0].id);
  });
}

check('langchain: withStructuredOutput(zod, method jsonSchema) gives a typed object', async () => {
  // method 'jsonSchema' sends response_format json_schema (the default for a
  // model not named gpt-3*/gpt-4, explicit here); 'functionCalling' would ask
  // for a forced tool call, 'jsonMode' for json_object without the schema.
  const model = chatOpenAI().withStructuredOutput(ZPerson, { method: 'jsonSchema', name: 'person', strict: true });
  const obj = await model.invoke('Invent a person.');
  assertPerson(ZPerson.parse(obj));
});

// --------------------------------------------------------------- ollama npm

function ollama() {
  return new Ollama({ host: server.url });
}
const sameModel = (name) => name === MODEL || name === `${MODEL}:latest`;

check('ollama: list shows the model', async () => {
  const r = await ollama().list();
  assert.ok(r.models.some((m) => sameModel(m.name) || sameModel(m.model)), JSON.stringify(r.models));
});

check('ollama: chat streamed ends with done and eval_count', async () => {
  const stream = await ollama().chat({
    model: MODEL, messages: HELLO, stream: true, options: { num_predict: 8, temperature: 0 },
  });
  let chunks = 0;
  let last = null;
  for await (const part of stream) {
    chunks++;
    assert.equal(part.message.role, 'assistant');
    assert.equal(typeof part.message.content, 'string');
    last = part;
  }
  assert.ok(chunks >= 2, `${chunks} chunks`);
  assert.equal(last.done, true);
  assert.ok(['stop', 'length'].includes(last.done_reason), `done_reason ${last.done_reason}`);
  assert.ok(Number.isInteger(last.eval_count) && last.eval_count > 0 && last.eval_count <= 8, `eval_count ${last.eval_count}`);
  assert.ok(Number.isInteger(last.prompt_eval_count) && last.prompt_eval_count > 0);
});

check('ollama: generate returns response and done', async () => {
  const r = await ollama().generate({ model: MODEL, prompt: 'Once upon a time', options: { num_predict: 8, temperature: 0 } });
  assert.equal(typeof r.response, 'string');
  assert.equal(r.done, true);
  assert.ok(r.eval_count > 0 && r.eval_count <= 8);
  assert.ok(sameModel(r.model), r.model);
});

check('ollama: chat with format json gives a JSON object', async () => {
  const r = await ollama().chat({
    model: MODEL, messages: [{ role: 'user', content: 'Describe a cat in JSON.' }], format: 'json',
    options: { num_predict: 32, temperature: 0 },
  });
  assertJsonObject(r.message.content, r.done_reason);
});

check('ollama: chat with a JSON schema as format gives an object of the schema', async () => {
  const r = await ollama().chat({
    model: MODEL, messages: [{ role: 'user', content: 'Invent a person.' }], format: PERSON,
    options: { num_predict: CONSTRAINED, temperature: 0 },
  });
  assert.equal(r.done_reason, 'stop', r.message.content);
  assertPerson(JSON.parse(r.message.content));
});

check('ollama: show returns the details', async () => {
  const r = await ollama().show({ model: MODEL });
  assert.ok(r.details, JSON.stringify(r));
  assert.equal(r.details.format, 'gguf');
  assert.equal(typeof r.details.family, 'string');
  assert.ok(r.details.family.length > 0);
  assert.equal(typeof r.details.quantization_level, 'string');
  assert.ok(r.model_info && typeof r.model_info === 'object');
});

check('ollama: ps shows the loaded model; version is a string', async () => {
  const c = ollama();
  const ps = await c.ps();
  assert.ok(Array.isArray(ps.models));
  assert.ok(ps.models.some((m) => sameModel(m.name) || sameModel(m.model)), JSON.stringify(ps.models));
  const v = await c.version();
  assert.equal(typeof v.version, 'string');
  assert.ok(v.version.length > 0);
});
