// colony dashboard: a live view of the cluster (GET /v1/cluster every second)
// and a chat box that streams answers from /v1/chat/completions (or
// /v1/completions for models without a chat template). No external assets;
// every value from the server is inserted as text, never as HTML.
'use strict';

const COLORS = ['#5eb3ff', '#3fcf8e', '#f2b84b', '#c48bff', '#ff8a65', '#4dd0e1', '#f06292', '#aed581'];
const $ = (id) => document.getElementById(id);

const state = {
  key: localStorage.getItem('colony.apiKey') || '',
  history: [],        // chat messages {role, content}
  abort: null,        // AbortController of the running request
  noTemplate: false,  // the model refused chat: use completions in auto mode
  models: [],
};

function headers(json) {
  const h = {};
  if (json) h['Content-Type'] = 'application/json';
  if (state.key) h['Authorization'] = 'Bearer ' + state.key;
  return h;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function fmtBytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v.toFixed(0) : v.toFixed(v < 10 ? 2 : 1)) + ' ' + units[i];
}

function fmtNum(v, digits, unit) {
  if (v === null || v === undefined || Number.isNaN(Number(v))) return '—';
  const x = Number(v);
  // small values keep two significant digits instead of rounding to 0.00
  const d = x !== 0 && Math.abs(x) < Math.pow(10, -digits) ? Math.min(6, 1 - Math.floor(Math.log10(Math.abs(x)))) : digits;
  return x.toFixed(d) + (unit ? ' ' + unit : '');
}

// ---- cluster view ---------------------------------------------------------

function layerRange(node) {
  const l = node.layers || {};
  return { first: Number(l.first || 0), last: Number(l.last || 0) };
}

function renderLayerBar(cluster) {
  const bar = $('layerbar');
  bar.replaceChildren();
  const nLayer = Number((cluster.model || {}).n_layer || 0);
  $('layer-count').textContent = nLayer ? nLayer + ' blocks' : '';
  $('layer-max').textContent = nLayer ? String(nLayer) : '';
  const nodes = (cluster.nodes || []).filter((n) => layerRange(n).last > layerRange(n).first)
    .sort((a, b) => layerRange(a).first - layerRange(b).first);
  nodes.forEach((n) => {
    const r = layerRange(n);
    const seg = el('div', 'segment' + (n.state === 'lost' ? ' lost' : ''));
    seg.style.flexGrow = String(r.last - r.first);
    seg.style.background = n._color;
    seg.textContent = (n.name || n.id) + ' · ' + r.first + '–' + (r.last - 1);
    seg.title = (n.name || n.id) + ': layers ' + r.first + '–' + (r.last - 1) + ' (' + (r.last - r.first) + ')';
    seg.dataset.testid = 'segment';
    bar.appendChild(seg);
  });
  const covered = nodes.reduce((s, n) => s + layerRange(n).last - layerRange(n).first, 0);
  if (nLayer > covered) {
    const gap = el('div', 'segment lost');
    gap.style.flexGrow = String(nLayer - covered);
    gap.style.background = '#2a313b';
    gap.title = 'layers without a node';
    bar.appendChild(gap);
  }
  // blocks skipped with --skip-layers: a hatched mark over each, on top of
  // the node that holds (but does not compute) it
  const skipped = ((cluster.model || {}).skip_layers || []).map(Number);
  skipped.filter((b) => nLayer > 0 && b >= 0 && b < nLayer).forEach((b) => {
    const mark = el('div', 'skipped');
    mark.style.left = (100 * b / nLayer) + '%';
    mark.style.width = (100 / nLayer) + '%';
    mark.title = 'block ' + b + ' skipped (--skip-layers)';
    mark.dataset.testid = 'skipped-block';
    bar.insertBefore(mark, bar.firstChild);  // the segments keep their :last-child
  });
}

function kvRow(dl, label, value) {
  dl.appendChild(el('dt', null, label));
  dl.appendChild(el('dd', null, value));
}

function renderNode(n) {
  const card = el('article', 'node');
  card.dataset.testid = 'node';
  card.style.borderLeftColor = n._color;
  const head = el('div', 'node-head');
  const name = el('div', 'node-name', n.name || n.id);
  name.appendChild(el('span', 'node-role', n.role || ''));
  head.appendChild(name);
  const st = n.state || 'unknown';
  const badge = el('span', 'badge ' + st, st === 'loading' ? 'loading ' + Math.round((n.progress || 0) * 100) + '%' : st);
  badge.dataset.testid = 'node-state';
  head.appendChild(badge);
  card.appendChild(head);
  card.appendChild(el('div', 'node-device', n.device || ''));

  const r = layerRange(n);
  const dl = el('dl', 'kv');
  kvRow(dl, 'layers', r.last > r.first ? r.first + '–' + (r.last - 1) + ' (' + (r.last - r.first) + ')' : 'none');
  dl.lastChild.dataset.testid = 'node-layers';
  const mem = n.memory || {};
  const used = (mem.weights_bytes || 0) + (mem.kv_bytes || 0);
  kvRow(dl, 'memory', fmtBytes(used) + (mem.available_bytes != null ? ' · ' + fmtBytes(mem.available_bytes) + ' free' : ''));
  kvRow(dl, 'tokens/s', fmtNum(n.tokens_per_s, 1));
  dl.lastChild.dataset.testid = 'node-tps';
  kvRow(dl, 'compute', fmtNum(n.compute_ms, 2, 'ms/ubatch'));
  kvRow(dl, 'link', n.link_rtt_ms == null ? (n.role === 'coordinator' ? 'local' : '—') : fmtNum(n.link_rtt_ms, 1, 'ms'));
  if (n.battery) kvRow(dl, 'battery', fmtNum(n.battery.percent, 0, '%') + (n.battery.charging ? ' ⚡' : ''));
  if (n.temperature_c != null) kvRow(dl, 'temperature', fmtNum(n.temperature_c, 0, '°C'));
  const th = n.threads;
  if (th && th.n) {
    kvRow(dl, 'threads', th.n + (th.cores ? ' on cores ' + th.cores : '') +
      (th.thermal_limited ? ' · limited by --max-temp' : ''));
    dl.lastChild.dataset.testid = 'node-threads';
  }
  const kv = n.kv || {};
  if (kv.size_cells) kvRow(dl, 'KV cache', kv.used_cells + ' / ' + kv.size_cells + ' cells');
  card.appendChild(dl);

  const meter = el('div', 'meter' + (st === 'loading' ? ' progress' : ''));
  const fill = el('div');
  const frac = st === 'loading' ? (n.progress || 0) : (kv.size_cells ? kv.used_cells / kv.size_cells : 0);
  fill.style.width = Math.max(0, Math.min(100, frac * 100)).toFixed(1) + '%';
  meter.appendChild(fill);
  meter.title = st === 'loading' ? 'loading progress' : 'KV cache use';
  card.appendChild(meter);
  return card;
}

function renderCluster(c) {
  const nodes = c.nodes || [];
  nodes.forEach((n, i) => { n._color = COLORS[i % COLORS.length]; });
  $('model-name').textContent = (c.model || {}).id || '';
  const status = $('status');
  const s = c.status || 'unknown';
  status.className = 'status ' + (s === 'ok' ? 'ok' : s === 'degraded' ? 'degraded' : s === 'loading' ? 'loading' : 'down');
  $('status-text').textContent = s + (c.reason ? ' — ' + c.reason : '');
  const req = c.requests || {};
  const spec = c.speculative;
  $('requests').textContent = (req.running || 0) + ' running · ' + (req.queued || 0) + ' queued · ' +
    (req.parallel || 0) + ' slots' +
    (spec ? ' · speculative (' + spec.type + '): ' + Math.round(100 * spec.acceptance) + ' % of drafts accepted, ' +
      spec.tokens_per_verification.toFixed(2) + ' tokens per traversal' : '');
  renderLayerBar(c);
  $('nodes').replaceChildren(...nodes.map(renderNode));
  renderPlan(c);
}

// The current plan (predicted ms per token, devices left out and why), the
// re-plan log (trigger, decision) and the recoveries from lost stages (who,
// how fast, what took over, the pause), newest first.
function renderPlan(c) {
  const plan = c.plan;
  const replans = c.replans || [];
  const recoveries = c.recoveries || [];
  const box = $('plan');
  box.hidden = !plan && replans.length === 0 && recoveries.length === 0;
  if (box.hidden) return;
  const pipe = c.pipeline || {};
  let summary = 'plan';
  if (pipe.epoch !== undefined) summary += ' #' + pipe.epoch;
  if (pipe.planner) summary += ' · ' + pipe.planner;
  if (plan && plan.predicted_ms_per_token !== null && plan.predicted_ms_per_token !== undefined) {
    summary += ' · predicted ' + Number(plan.predicted_ms_per_token).toFixed(2) + ' ms/token';
  }
  if (pipe.replanning) summary += ' · re-planning…';
  const out = (plan && plan.left_out) || [];
  if (out.length) summary += ' · left out: ' + out.map((x) => (x.name || x.node_id) + ' (' + x.reason + ')').join('; ');
  $('plan-summary').textContent = summary;
  const items = replans.slice(-8).reverse().map((r) => {
    const when = r.time_unix_ms ? new Date(r.time_unix_ms).toLocaleTimeString() : '';
    const li = el('li', r.adopted ? 'adopted' : 'kept', when + ' — ' + (r.trigger || '') + ': ' + (r.decision || ''));
    return li;
  });
  $('replans').replaceChildren(...items);
  const recs = recoveries.slice(-8).reverse().map((r) => {
    const when = r.detected_unix_ms ? new Date(r.detected_unix_ms).toLocaleTimeString() : '';
    const parts = ['lost ' + (r.lost || 'the pipeline') + ' (' + (r.reason || '') + ')',
      'seen after ' + r.detect_ms + ' ms'];
    if (r.failed) parts.push('requests failed');
    else if (r.resumed_unix_ms) {
      parts.push(r.replacement + ' took over in ' + (r.resumed_unix_ms - r.detected_unix_ms) + ' ms');
      parts.push(r.requests_replayed + ' request(s) replayed, ' + r.tokens_recomputed + ' positions recomputed');
      if (r.stall_ms) parts.push('longest pause ' + r.stall_ms + ' ms');
    } else parts.push('recovering…');
    return el('li', r.failed ? 'kept' : 'adopted', when + ' — ' + parts.join(', '));
  });
  $('recoveries').replaceChildren(...recs);
}

async function pollCluster() {
  try {
    const r = await fetch('/v1/cluster', { headers: headers(false), cache: 'no-store' });
    if (r.status === 401) throw new Error('401: set the API key (button at the top right)');
    if (!r.ok) throw new Error('HTTP ' + r.status);
    renderCluster(await r.json());
    $('cluster-error').hidden = true;
  } catch (e) {
    $('cluster-error').hidden = false;
    $('cluster-error').className = 'note error';
    $('cluster-error').textContent = 'cluster: ' + e.message;
    $('status').className = 'status down';
    $('status-text').textContent = 'unreachable';
  } finally {
    setTimeout(pollCluster, 1000);
  }
}

async function loadModels() {
  try {
    const r = await fetch('/v1/models', { headers: headers(false) });
    if (!r.ok) return;
    const body = await r.json();
    state.models = (body.data || []).map((m) => m.id);
    // colony's extension of the model object: whether chat messages can be rendered
    const first = (body.data || [])[0];
    if (first && first.chat_template === false) state.noTemplate = true;
    const sel = $('model');
    sel.replaceChildren(...state.models.map((id) => { const o = el('option', null, id); o.value = id; return o; }));
  } catch (e) { /* the cluster view shows connectivity problems */ }
}

// ---- chat -----------------------------------------------------------------

function addMessage(role, text) {
  $('empty')?.remove();
  const m = el('div', 'msg ' + role, text);
  m.dataset.testid = 'msg-' + role;
  $('messages').appendChild(m);
  $('messages').scrollTop = $('messages').scrollHeight;
  return m;
}

function settings() {
  const s = {
    model: $('model').value || undefined,
    temperature: Number($('temperature').value),
    max_tokens: Math.max(1, parseInt($('max-tokens').value || '256', 10)),
    top_p: Number($('top-p').value),
  };
  const seed = $('seed').value.trim();
  if (seed !== '') s.seed = parseInt(seed, 10);
  return s;
}

function useChat() {
  const mode = $('mode').value;
  return mode === 'chat' || (mode === 'auto' && !state.noTemplate);
}

function buildRequest(chat) {
  const body = Object.assign(settings(), { stream: true, stream_options: { include_usage: true } });
  if (chat) {
    const sys = $('system').value.trim();
    body.messages = (sys ? [{ role: 'system', content: sys }] : []).concat(state.history);
    return ['/v1/chat/completions', body];
  }
  // completion mode: the conversation as plain text
  const last = state.history[state.history.length - 1];
  body.prompt = last ? last.content : '';
  return ['/v1/completions', body];
}

// Reads an SSE response, calling onData with each parsed "data:" payload.
async function readSse(response, onData) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const event = buf.slice(0, i);
      buf = buf.slice(i + 2);
      for (const line of event.split('\n')) {
        if (!line.startsWith('data:')) continue;
        const data = line.slice(5).trim();
        if (data === '[DONE]') return;
        onData(JSON.parse(data));
      }
    }
  }
}

async function send(text) {
  state.history.push({ role: 'user', content: text });
  addMessage('user', text);
  const out = addMessage('assistant', '');
  out.classList.add('streaming');
  $('send').disabled = true;
  $('stop').disabled = false;
  state.abort = new AbortController();
  const t0 = performance.now();
  let tFirst = 0;
  let answer = '';
  let usage = null;
  let finish = null;
  try {
    let chat = useChat();
    let [path, body] = buildRequest(chat);
    let r = await fetch(path, { method: 'POST', headers: headers(true), body: JSON.stringify(body), signal: state.abort.signal });
    if (r.status === 400 && chat && $('mode').value === 'auto') {
      const err = await r.json().catch(() => ({}));
      if ((err.error || {}).code === 'no_chat_template') {
        state.noTemplate = true;
        chat = false;
        [path, body] = buildRequest(false);
        r = await fetch(path, { method: 'POST', headers: headers(true), body: JSON.stringify(body), signal: state.abort.signal });
      } else {
        throw new Error((err.error || {}).message || 'HTTP 400');
      }
    }
    if (!r.ok) {
      const err = await r.json().catch(() => ({}));
      throw new Error('HTTP ' + r.status + ': ' + ((err.error || {}).message || r.statusText));
    }
    await readSse(r, (chunk) => {
      if (chunk.error) throw new Error(chunk.error.message);
      if (chunk.usage) usage = chunk.usage;
      const choice = (chunk.choices || [])[0];
      if (!choice) return;
      const piece = chat ? ((choice.delta || {}).content || '') : (choice.text || '');
      if (piece) {
        if (!tFirst) tFirst = performance.now();
        answer += piece;
        out.textContent = answer;
        $('messages').scrollTop = $('messages').scrollHeight;
      }
      if (choice.finish_reason) finish = choice.finish_reason;
    });
    state.history.push({ role: 'assistant', content: answer });
    const secs = (performance.now() - t0) / 1000;
    const meta = [];
    if (finish) meta.push(finish);
    if (usage) meta.push(usage.completion_tokens + ' tokens');
    if (tFirst) meta.push('first token ' + Math.round(tFirst - t0) + ' ms');
    if (usage && secs > 0) meta.push((usage.completion_tokens / secs).toFixed(1) + ' tok/s');
    out.appendChild(el('span', 'meta', meta.join(' · ')));
    out.dataset.done = 'true';
    $('stats').textContent = (chat ? 'chat' : 'completion') + ' · ' + meta.join(' · ');
  } catch (e) {
    if (e.name === 'AbortError') {
      out.appendChild(el('span', 'meta', 'stopped'));
      state.history.push({ role: 'assistant', content: answer });
    } else {
      out.remove();
      state.history.pop();
      addMessage('error', e.message);
    }
  } finally {
    out.classList.remove('streaming');
    $('send').disabled = false;
    $('stop').disabled = true;
    state.abort = null;
  }
}

function setup() {
  $('composer').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = $('prompt').value.trim();
    if (!text || state.abort) return;
    $('prompt').value = '';
    send(text);
  });
  $('prompt').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey) {
      ev.preventDefault();
      $('composer').requestSubmit();
    }
  });
  $('stop').addEventListener('click', () => state.abort && state.abort.abort());
  $('clear').addEventListener('click', () => {
    state.history = [];
    $('messages').replaceChildren(el('p', 'empty', 'Ask the model something. Answers stream token by token.'));
    $('messages').firstChild.id = 'empty';
  });
  $('mode').addEventListener('change', () => { state.noTemplate = false; });
  $('key-button').addEventListener('click', () => {
    $('key-input').value = state.key;
    $('key-dialog').showModal();
  });
  $('key-dialog').addEventListener('close', () => {
    if ($('key-dialog').returnValue !== 'save') return;
    state.key = $('key-input').value.trim();
    if (state.key) localStorage.setItem('colony.apiKey', state.key);
    else localStorage.removeItem('colony.apiKey');
    loadModels();
  });
  loadModels();
  pollCluster();
}

setup();
