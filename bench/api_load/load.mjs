#!/usr/bin/env node
// Load generator for an OpenAI-compatible server (colony serve / colony run,
// llama.cpp's llama-server, vLLM, ...): streamed chat completions (or
// completions) under
//   - closed loop: C workers each send requests back to back for --duration s;
//   - open loop: Poisson arrivals at each --rates req/s for --duration s, rates
//     in increasing order until the server saturates;
//   - --idle N: N idle keep-alive TCP connections (connected and silent, or
//     with an unfinished request) held open while --idle-streams streams run,
//     against the same streams without them.
// Reports requests/s, output tokens/s, TTFT (to the first content delta) and
// time per output token ((t_last - t_first) / (tokens - 1), tokens from the
// usage of stream_options.include_usage) at p50/p99, and errors, as markdown
// tables or JSON (--json). No dependencies: node:http with keep-alive agents.
// Usage: node load.mjs --help
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';

const HELP = `usage: node load.mjs [options]

  --url URL              server base URL (default http://127.0.0.1:8080)
  --endpoint E           chat (/v1/chat/completions) or completions (/v1/completions) (default chat)
  --model NAME           model name (default: the first of GET /v1/models)
  --api-key KEY          Authorization: Bearer KEY (default $COLONY_API_KEY or $OPENAI_API_KEY)
  --insecure             accept any TLS certificate (https URLs)
  --concurrency LIST     closed-loop levels, e.g. 1,4,16,64 ('' skips) (default 1,4,16,64)
  --rates LIST           open-loop Poisson rates in req/s, e.g. 0.5,1,2,4 ('' skips) (default 0.5,1,2,4)
  --all-rates            run every rate, even past saturation
  --saturation F         a rate saturates when achieved/offered < F, a request fails or
                         --max-inflight is reached (default 0.9)
  --max-inflight N       open loop: arrivals beyond N requests in flight are dropped (default 256)
  --duration S           seconds per level (default 20)
  --max-tokens N         max_tokens of each request (default 64)
  --temperature T        temperature of each request (default: the server's)
  --prompt TEXT          prompt (or user message) (default: a short story opening)
  --idle N               also measure --idle-streams streams with and without N idle connections
  --idle-kind K          silent (connect, send nothing), partial (an unfinished request line
                         and headers) or both (default both)
  --idle-streams N       active streams of the idle measurement (default 4)
  --timeout S            a request taking longer fails (default 300)
  --seed N               seed of the Poisson arrivals (default 1)
  --warmup N             requests sent (and not counted) before measuring (default 1)
  --smoke                a ~5 s run for CI: concurrency 1,2, rate 4, 2 idle connections (or --idle), 0.7 s per
                         level, max_tokens 8; exits 1 on any error
  --json                 print one JSON object instead of markdown tables
  -h, --help             this help
`;

const { values: opt } = parseArgs({
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:8080' },
    endpoint: { type: 'string', default: 'chat' },
    model: { type: 'string' },
    'api-key': { type: 'string', default: process.env.COLONY_API_KEY || process.env.OPENAI_API_KEY || '' },
    insecure: { type: 'boolean', default: false },
    concurrency: { type: 'string', default: '1,4,16,64' },
    rates: { type: 'string', default: '0.5,1,2,4' },
    'all-rates': { type: 'boolean', default: false },
    saturation: { type: 'string', default: '0.9' },
    'max-inflight': { type: 'string', default: '256' },
    duration: { type: 'string', default: '20' },
    'max-tokens': { type: 'string', default: '64' },
    temperature: { type: 'string' },
    prompt: { type: 'string', default: 'Once upon a time, in a small village by the sea, there lived' },
    idle: { type: 'string', default: '0' },
    'idle-kind': { type: 'string', default: 'both' },
    'idle-streams': { type: 'string', default: '4' },
    timeout: { type: 'string', default: '300' },
    seed: { type: 'string', default: '1' },
    warmup: { type: 'string', default: '1' },
    smoke: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (opt.help) {
  process.stdout.write(HELP);
  process.exit(0);
}

function num(name, { integer = false, min = -Infinity } = {}) {
  const v = Number(opt[name]);
  if (!Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min) die(`--${name}: bad value ${opt[name]}`);
  return v;
}
function list(name) {
  const s = opt[name].trim();
  if (!s) return [];
  return s.split(',').map((x) => {
    const v = Number(x);
    if (!Number.isFinite(v) || v <= 0) die(`--${name}: bad value ${x}`);
    return v;
  });
}
function die(msg) {
  process.stderr.write(`load.mjs: ${msg}\n`);
  process.exit(2);
}

const cfg = {
  url: new URL(opt.url),
  endpoint: opt.endpoint,
  apiKey: opt['api-key'],
  concurrency: list('concurrency'),
  rates: list('rates'),
  allRates: opt['all-rates'],
  saturation: num('saturation', { min: 0 }),
  maxInflight: num('max-inflight', { integer: true, min: 1 }),
  duration: num('duration', { min: 0.1 }),
  maxTokens: num('max-tokens', { integer: true, min: 1 }),
  temperature: opt.temperature === undefined ? undefined : num('temperature', { min: 0 }),
  prompt: opt.prompt,
  idle: num('idle', { integer: true, min: 0 }),
  idleKinds: opt['idle-kind'] === 'both' ? ['silent', 'partial'] : [opt['idle-kind']],
  idleStreams: num('idle-streams', { integer: true, min: 1 }),
  timeoutMs: num('timeout', { min: 0.1 }) * 1000,
  seed: num('seed', { integer: true }),
  warmup: num('warmup', { integer: true, min: 0 }),
};
if (!['chat', 'completions'].includes(cfg.endpoint)) die(`--endpoint: chat or completions, not ${cfg.endpoint}`);
for (const k of cfg.idleKinds) if (!['silent', 'partial'].includes(k)) die(`--idle-kind: silent, partial or both, not ${k}`);
if (opt.smoke) {
  Object.assign(cfg, { concurrency: [1, 2], rates: [4], allRates: true, duration: 0.7, maxTokens: 8,
    idle: cfg.idle > 0 ? cfg.idle : 2, idleKinds: ['silent', 'partial'],
    idleStreams: 2, warmup: 1 });
}
const TLS = cfg.url.protocol === 'https:';
const HOST = cfg.url.hostname.replace(/^\[|\]$/g, '');
const PORT = Number(cfg.url.port) || (TLS ? 443 : 80);
const BASE_PATH = cfg.url.pathname.replace(/\/+$/, '');
const PATH = `${BASE_PATH}/v1/${cfg.endpoint === 'chat' ? 'chat/completions' : 'completions'}`;
const lib = TLS ? https : http;

function newAgent(maxSockets) {
  return new lib.Agent({ keepAlive: true, maxSockets, rejectUnauthorized: !opt.insecure });
}

function headers(extra = {}) {
  const h = { 'content-type': 'application/json', accept: 'text/event-stream', ...extra };
  if (cfg.apiKey) h.authorization = `Bearer ${cfg.apiKey}`;
  return h;
}

async function getJson(path) {
  return new Promise((resolve, reject) => {
    const req = lib.request({ host: HOST, port: PORT, path: BASE_PATH + path, method: 'GET', headers: headers(),
      rejectUnauthorized: !opt.insecure }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`GET ${path}: HTTP ${res.statusCode} ${body.slice(0, 200)}`));
        else {
          try { resolve(JSON.parse(body)); } catch (e) { reject(e); }
        }
      });
    });
    req.on('error', reject);
    req.setTimeout(30000, () => req.destroy(new Error(`GET ${path}: timeout`)));
    req.end();
  });
}

let requestCounter = 0;
function requestBody(model) {
  const n = requestCounter++;
  // a different prompt per request keeps a prefix cache from skipping the prefill
  const prompt = `${cfg.prompt} (${n})`;
  const body = { model, max_tokens: cfg.maxTokens, stream: true, stream_options: { include_usage: true } };
  if (cfg.temperature !== undefined) body.temperature = cfg.temperature;
  if (cfg.endpoint === 'chat') body.messages = [{ role: 'user', content: prompt }];
  else body.prompt = prompt;
  return JSON.stringify(body);
}

// One streamed request. Resolves (never rejects) with
// { ok, error, start, end, ttft, tpot, tokens, chunks } (times in ms).
function streamOnce(agent, model) {
  const body = requestBody(model);
  const start = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    let first = null;
    let last = null;
    let chunks = 0;
    let usageTokens = null;
    let done = false;
    const finish = (error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const end = performance.now();
      const tokens = usageTokens ?? chunks;
      if (!error && !done) error = 'stream ended without [DONE]';
      if (!error && first === null) error = 'no content delta';
      resolve({
        ok: !error,
        error: error || null,
        start,
        end,
        ttft: first === null ? null : first - start,
        tpot: first !== null && tokens > 1 ? (last - first) / (tokens - 1) : null,
        tokens: error ? 0 : tokens,
        chunks,
      });
    };
    const req = lib.request({ host: HOST, port: PORT, path: PATH, method: 'POST', agent,
      headers: headers({ 'content-length': Buffer.byteLength(body) }) }, (res) => {
      res.setEncoding('utf8');
      if (res.statusCode !== 200) {
        let text = '';
        res.on('data', (d) => { text += d; });
        res.on('end', () => {
          let msg = text.slice(0, 160);
          try { msg = JSON.parse(text).error?.message ?? msg; } catch { /* not JSON */ }
          finish(`HTTP ${res.statusCode}: ${msg}`);
        });
        res.on('error', (e) => finish(`HTTP ${res.statusCode}: ${e.message}`));
        return;
      }
      let buf = '';
      res.on('data', (d) => {
        const now = performance.now();
        buf += d;
        let cut;
        while ((cut = buf.search(/\r?\n\r?\n/)) >= 0) {
          const event = buf.slice(0, cut);
          buf = buf.slice(cut).replace(/^\r?\n\r?\n/, '');
          for (const line of event.split(/\r?\n/)) {
            if (!line.startsWith('data:')) continue;
            const data = line.slice(5).trim();
            if (data === '[DONE]') {
              done = true;
              continue;
            }
            let j;
            try { j = JSON.parse(data); } catch { finish(`bad SSE data: ${data.slice(0, 80)}`); return; }
            if (j.error) { finish(`stream error: ${j.error.message ?? JSON.stringify(j.error)}`); return; }
            if (j.usage?.completion_tokens !== undefined) usageTokens = j.usage.completion_tokens;
            const c = j.choices?.[0];
            const text = cfg.endpoint === 'chat' ? c?.delta?.content : c?.text;
            if (text) {
              chunks++;
              if (first === null) first = now;
              last = now;
            }
          }
        }
      });
      res.on('end', () => finish(null));
      res.on('error', (e) => finish(e.message));
      res.on('aborted', () => finish('response aborted'));
    });
    const timer = setTimeout(() => {
      req.destroy(new Error(`timeout after ${cfg.timeoutMs / 1000} s`));
    }, cfg.timeoutMs);
    req.on('error', (e) => finish(e.message));
    req.end(body);
  });
}

function percentile(xs, p) {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

function summarize(results, wallMs) {
  const ok = results.filter((r) => r.ok);
  const ttft = ok.map((r) => r.ttft);
  const tpot = ok.map((r) => r.tpot).filter((x) => x !== null);
  const tokens = ok.reduce((a, r) => a + r.tokens, 0);
  const errors = results.length - ok.length;
  const errorKinds = {};
  for (const r of results) if (!r.ok) errorKinds[r.error] = (errorKinds[r.error] ?? 0) + 1;
  return {
    requests: ok.length,
    errors,
    error_kinds: errorKinds,
    wall_s: wallMs / 1000,
    req_per_s: ok.length / (wallMs / 1000),
    out_tok_per_s: tokens / (wallMs / 1000),
    output_tokens: tokens,
    ttft_p50_ms: percentile(ttft, 50),
    ttft_p99_ms: percentile(ttft, 99),
    tpot_p50_ms: percentile(tpot, 50),
    tpot_p99_ms: percentile(tpot, 99),
  };
}

// Closed loop: `workers` loops of back-to-back requests; none starts after
// `durationS`; the wall time runs until the last one ends.
async function closedLoop(model, workers, durationS) {
  const agent = newAgent(workers);
  const t0 = performance.now();
  const deadline = t0 + durationS * 1000;
  const results = [];
  await Promise.all(Array.from({ length: workers }, async () => {
    while (performance.now() < deadline) results.push(await streamOnce(agent, model));
  }));
  const wall = performance.now() - t0;
  agent.destroy();
  return summarize(results, wall);
}

function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

// Open loop: Poisson arrivals at `rate` req/s for `durationS`, each request on
// its own (no cap but --max-inflight); wall time until the last one ends.
async function openLoop(model, rate, durationS, seed) {
  const agent = newAgent(Infinity);
  const rand = rng(seed);
  const t0 = performance.now();
  const pending = [];
  let inflight = 0;
  let maxInflight = 0;
  let dropped = 0;
  let arrivals = 0;
  for (let t = -Math.log(1 - rand()) / rate; t < durationS; t += -Math.log(1 - rand()) / rate) {
    await sleep(t0 + t * 1000 - performance.now());
    arrivals++;
    if (inflight >= cfg.maxInflight) {
      dropped++;
      continue;
    }
    inflight++;
    maxInflight = Math.max(maxInflight, inflight);
    pending.push(streamOnce(agent, model).then((r) => { inflight--; return r; }));
  }
  const results = await Promise.all(pending);
  const wall = performance.now() - t0;
  agent.destroy();
  const s = summarize(results, wall);
  const offered = arrivals / durationS;
  const saturated = dropped > 0 || s.errors > 0 || (arrivals > 0 && s.req_per_s < cfg.saturation * offered);
  return { rate, offered_req_per_s: offered, arrivals, dropped, max_inflight: maxInflight, saturated, ...s };
}

// N idle connections, reopened when the server closes one, until stop().
function idleConnections(n, kind) {
  const sockets = new Set();
  let closedByServer = 0;
  let stopping = false;
  let connected = 0;
  const partial = `POST ${PATH} HTTP/1.1\r\nHost: ${cfg.url.host}\r\nContent-Type: application/json\r\n`;
  const open = () => new Promise((resolve) => {
    const s = TLS
      ? tls.connect({ host: HOST, port: PORT, servername: net.isIP(HOST) ? undefined : HOST, rejectUnauthorized: !opt.insecure })
      : net.connect({ host: HOST, port: PORT });
    sockets.add(s);
    s.setNoDelay(true);
    s.on(TLS ? 'secureConnect' : 'connect', () => {
      connected++;
      if (kind === 'partial') s.write(partial);
      resolve();
    });
    s.on('data', () => {}); // a 408 or an error page: the close follows
    s.on('error', () => {});
    s.on('close', () => {
      sockets.delete(s);
      resolve();
      if (stopping) return;
      closedByServer++;
      open();
    });
  });
  const ready = Promise.all(Array.from({ length: n }, open));
  return {
    ready,
    stats: () => ({ closed_by_server: closedByServer, connects: connected }),
    stop() {
      stopping = true;
      for (const s of sockets) s.destroy();
    },
  };
}

async function idleMeasurement(model) {
  const rows = [];
  const base = await closedLoop(model, cfg.idleStreams, cfg.duration);
  rows.push({ idle: 0, kind: 'none', closed_by_server: 0, ...base });
  for (const kind of cfg.idleKinds) {
    const idle = idleConnections(cfg.idle, kind);
    await idle.ready;
    await sleep(200); // the server accepts them and gives them threads
    const s = await closedLoop(model, cfg.idleStreams, cfg.duration);
    const st = idle.stats();
    idle.stop();
    rows.push({ idle: cfg.idle, kind, closed_by_server: st.closed_by_server, ...s });
    await sleep(200);
  }
  return rows;
}

const ms = (x) => (x === null || x === undefined ? '–' : x < 10 ? x.toFixed(2) : x.toFixed(1));
const f2 = (x) => x.toFixed(2);
function table(head, rows) {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}
function errorNotes(label, s) {
  return Object.entries(s.error_kinds).map(([e, n]) => `- ${label}: ${n} × ${e}`);
}

async function main() {
  let model = opt.model;
  if (!model) {
    const models = await getJson('/v1/models');
    model = models.data?.[0]?.id;
    if (!model) die('GET /v1/models listed no model; pass --model');
  }
  for (let i = 0; i < cfg.warmup; i++) {
    const r = await streamOnce(newAgent(1), model);
    if (!r.ok) die(`warm-up request failed: ${r.error}`);
  }
  const out = {
    url: cfg.url.href, endpoint: cfg.endpoint, model, max_tokens: cfg.maxTokens, duration_s: cfg.duration,
    temperature: cfg.temperature ?? null, closed: [], open: [], idle: [],
  };
  for (const c of cfg.concurrency) {
    out.closed.push({ concurrency: c, ...(await closedLoop(model, c, cfg.duration)) });
    if (!opt.json) process.stderr.write(`closed loop c=${c} done\n`);
  }
  for (const [i, rate] of cfg.rates.entries()) {
    const r = await openLoop(model, rate, cfg.duration, cfg.seed + i);
    out.open.push(r);
    if (!opt.json) process.stderr.write(`open loop ${rate} req/s done${r.saturated ? ' (saturated)' : ''}\n`);
    if (r.saturated && !cfg.allRates) break;
  }
  if (cfg.idle > 0) out.idle = await idleMeasurement(model);

  if (opt.json) {
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  } else {
    const lines = [`${out.url} ${cfg.endpoint === 'chat' ? '/v1/chat/completions' : '/v1/completions'}, model ${model}, ` +
      `max_tokens ${cfg.maxTokens}, ${cfg.duration} s per level, temperature ${cfg.temperature ?? 'server default'}`, ''];
    const notes = [];
    if (out.closed.length) {
      lines.push('Closed loop (each worker sends requests back to back):', '', table(
        ['concurrency', 'requests', 'errors', 'req/s', 'out tok/s', 'TTFT p50 ms', 'TTFT p99 ms', 'TPOT p50 ms', 'TPOT p99 ms'],
        out.closed.map((s) => [s.concurrency, s.requests, s.errors, f2(s.req_per_s), f2(s.out_tok_per_s),
          ms(s.ttft_p50_ms), ms(s.ttft_p99_ms), ms(s.tpot_p50_ms), ms(s.tpot_p99_ms)])), '');
      for (const s of out.closed) notes.push(...errorNotes(`closed c=${s.concurrency}`, s));
    }
    if (out.open.length) {
      lines.push('Open loop (Poisson arrivals):', '', table(
        ['rate req/s', 'offered req/s', 'requests', 'errors', 'dropped', 'max in flight', 'req/s', 'out tok/s',
          'TTFT p50 ms', 'TTFT p99 ms', 'TPOT p50 ms', 'TPOT p99 ms', 'saturated'],
        out.open.map((s) => [s.rate, f2(s.offered_req_per_s), s.requests, s.errors, s.dropped, s.max_inflight,
          f2(s.req_per_s), f2(s.out_tok_per_s), ms(s.ttft_p50_ms), ms(s.ttft_p99_ms), ms(s.tpot_p50_ms),
          ms(s.tpot_p99_ms), s.saturated ? 'yes' : 'no'])), '');
      for (const s of out.open) notes.push(...errorNotes(`open ${s.rate}/s`, s));
    }
    if (out.idle.length) {
      lines.push(`${cfg.idleStreams} active streams (closed loop) with and without idle keep-alive connections:`, '', table(
        ['idle connections', 'kind', 'requests', 'errors', 'req/s', 'TTFT p50 ms', 'TTFT p99 ms', 'TPOT p50 ms',
          'TPOT p99 ms', 'idle closed by server'],
        out.idle.map((s) => [s.idle, s.kind, s.requests, s.errors, f2(s.req_per_s), ms(s.ttft_p50_ms), ms(s.ttft_p99_ms),
          ms(s.tpot_p50_ms), ms(s.tpot_p99_ms), s.closed_by_server])), '');
      for (const s of out.idle) notes.push(...errorNotes(`idle ${s.idle} ${s.kind}`, s));
    }
    if (notes.length) lines.push('Errors:', ...notes, '');
    process.stdout.write(lines.join('\n'));
  }
  const all = [...out.closed, ...out.open, ...out.idle];
  const failed = all.reduce((a, s) => a + s.errors, 0);
  if (opt.smoke && (failed > 0 || all.some((s) => s.requests === 0))) {
    process.stderr.write(`load.mjs --smoke: ${failed} failed requests\n`);
    process.exit(1);
  }
  if (all.length && all.every((s) => s.requests === 0)) process.exit(1);
}

main().catch((e) => {
  process.stderr.write(`load.mjs: ${e.stack || e}\n`);
  process.exit(1);
});
