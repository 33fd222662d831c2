// The /live page: subscribes to valueChanged over GraphQL over SSE (yoga's distinct-connections mode) with
// fetch() and a stream reader, so that it can send `Authorization: Bearer <token>` when the reader has
// READ_TOKENS (EventSource cannot send headers, and a token in the URL would land in logs); shows each
// watched key's latest event, and says whether it is connected. No library, no build step.
const SUBSCRIPTION = `subscription Live($keys: [String!], $prefix: String) {
  valueChanged(keys: $keys, prefix: $prefix, includeInitial: true) { key value exists version op initial }
}`;

const form = document.getElementById('watch');
const keysInput = document.getElementById('keys');
const prefixInput = document.getElementById('prefix');
const tokenInput = document.getElementById('token');
const rows = document.getElementById('rows');
const status = document.getElementById('status');
const message = document.getElementById('message');

/** Aborts the subscription in progress (a new watch, or leaving). */
let current = null;

function setStatus(kind, text) {
  status.className = `status ${kind}`;
  status.textContent = text;
  status.dataset.state = kind;
}

function showMessage(text) {
  message.hidden = !text;
  message.textContent = text ?? '';
}

function rowFor(key) {
  for (const row of rows.children) if (row.dataset.key === key) return row;
  const row = document.createElement('tr');
  row.dataset.key = key;
  for (const name of ['key', 'value', 'version', 'event', 'received']) {
    const cell = document.createElement('td');
    cell.className = name;
    row.append(cell);
  }
  row.children[0].textContent = key;
  rows.append(row);
  return row;
}

function show(change) {
  const row = rowFor(change.key);
  // Versions only rise per key; an older one (e.g. a replay after reconnecting) never replaces a newer.
  const shown = row.dataset.version;
  if (shown && change.version && BigInt(change.version) < BigInt(shown)) return;
  row.dataset.version = change.version ?? '';
  row.dataset.exists = String(change.exists);
  const [, value, version, event, received] = row.children;
  value.textContent = change.exists ? change.value : '(no value)';
  version.textContent = change.version ?? '—';
  event.textContent = change.initial ? 'current' : change.op;
  received.textContent = new Date().toLocaleTimeString();
  row.classList.remove('changed');
  void row.offsetWidth; // restart the highlight
  row.classList.add('changed');
}

function errorText(errors) {
  return errors.map((err) => `${err.extensions?.code ?? 'ERROR'}: ${err.message}`).join('; ');
}

/** A refused request's reason: yoga answers it as JSON or as one event of a stream. */
function refusalText(status, body) {
  try {
    const data = /^data: ?(.*)$/m.exec(body);
    const parsed = JSON.parse(data ? data[1] : body);
    if (parsed.errors?.length) return errorText(parsed.errors);
  } catch {
    // Not JSON: the status says enough.
  }
  return `HTTP ${status}`;
}

/**
 * Reads a text/event-stream body and calls onEvent(name, data) per event (comments and pings skipped).
 * Resolves when the stream ends.
 */
async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') name = text;
        else if (field === 'data') data.push(text);
      }
      if (data.length > 0 || name !== 'message') onEvent(name, data.join('\n'));
    }
  }
}

function watch(keys, prefix, token) {
  current?.abort();
  const controller = new AbortController();
  current = controller;
  rows.replaceChildren();
  showMessage(null);
  const variables = {};
  if (keys.length > 0) variables.keys = keys;
  if (prefix) variables.prefix = prefix;
  const headers = { 'content-type': 'application/json', accept: 'text/event-stream' };
  if (token) headers.authorization = `Bearer ${token}`;
  let retryMs = 500;

  const connect = async () => {
    setStatus('connecting', 'connecting…');
    let ended = false;
    try {
      const response = await fetch('/graphql', {
        method: 'POST',
        headers,
        body: JSON.stringify({ query: SUBSCRIPTION, variables }),
        signal: controller.signal,
      });
      // The server failed (e.g. Redis unavailable): worth trying again, like a dropped connection.
      if (response.status >= 500) throw new Error(`HTTP ${response.status}`);
      if (!response.ok || !response.headers.get('content-type')?.includes('text/event-stream')) {
        // Refused (a missing or wrong token, bad input): trying again would only be refused again.
        showMessage(refusalText(response.status, await response.text()));
        setStatus('lost', 'refused');
        return;
      }
      setStatus('live', 'live');
      retryMs = 500;
      await readEvents(response.body, (name, data) => {
        if (name === 'complete') {
          ended = true;
          return;
        }
        if (name !== 'next') return;
        const result = JSON.parse(data);
        if (result.errors?.length) showMessage(errorText(result.errors));
        else if (result.data?.valueChanged) show(result.data.valueChanged);
      });
    } catch (error) {
      if (controller.signal.aborted) return;
      console.warn('live subscription interrupted', error);
    }
    if (controller.signal.aborted) return;
    if (ended) return setStatus('lost', 'ended by the server');
    // The connection dropped: subscribe again (its snapshot brings the page up to date), backing off.
    setStatus('connecting', 'reconnecting…');
    setTimeout(() => void connect(), retryMs);
    retryMs = Math.min(retryMs * 2, 10_000);
  };
  void connect();
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const keys = keysInput.value
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean);
  const prefix = prefixInput.value;
  if (keys.length === 0 && !prefix) return showMessage('Enter keys (comma-separated) or a prefix.');
  const params = new URLSearchParams();
  if (keys.length) params.set('keys', keys.join(','));
  if (prefix) params.set('prefix', prefix);
  // The token stays out of the URL: URLs land in logs and browser history.
  history.replaceState(null, '', `/live?${params}`);
  watch(keys, prefix, tokenInput.value.trim());
});

// /live?keys=a,b&prefix=p starts watching at once (a link can be shared).
const start = new URLSearchParams(location.search);
if (start.get('keys') || start.get('prefix')) {
  keysInput.value = start.get('keys') ?? '';
  prefixInput.value = start.get('prefix') ?? '';
  form.requestSubmit();
}
