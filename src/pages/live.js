// The /live page: subscribes to valueChanged over yoga's GraphQL-over-SSE (a plain EventSource, so no
// library and no build step), shows each watched key's latest event, and says whether it is connected.
const SUBSCRIPTION = `subscription Live($keys: [String!], $prefix: String) {
  valueChanged(keys: $keys, prefix: $prefix, includeInitial: true) { key value exists version op initial }
}`;

const form = document.getElementById('watch');
const keysInput = document.getElementById('keys');
const prefixInput = document.getElementById('prefix');
const rows = document.getElementById('rows');
const status = document.getElementById('status');
const message = document.getElementById('message');

let source = null;

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

function watch(keys, prefix) {
  source?.close();
  rows.replaceChildren();
  showMessage(null);
  const variables = {};
  if (keys.length > 0) variables.keys = keys;
  if (prefix) variables.prefix = prefix;
  const url = `/graphql?query=${encodeURIComponent(SUBSCRIPTION)}&variables=${encodeURIComponent(JSON.stringify(variables))}`;
  setStatus('connecting', 'connecting…');
  source = new EventSource(url);
  source.addEventListener('open', () => setStatus('live', 'live'));
  source.addEventListener('next', (e) => {
    const result = JSON.parse(e.data);
    if (result.errors?.length) {
      showMessage(
        result.errors.map((err) => `${err.extensions?.code ?? 'ERROR'}: ${err.message}`).join('; '),
      );
      return;
    }
    if (result.data?.valueChanged) show(result.data.valueChanged);
  });
  source.addEventListener('complete', () => {
    source.close();
    setStatus('lost', 'ended by the server');
  });
  // EventSource reconnects by itself; the new subscription starts with a fresh snapshot.
  source.addEventListener('error', () => {
    if (source.readyState === EventSource.CLOSED) setStatus('lost', 'disconnected');
    else setStatus('connecting', 'reconnecting…');
  });
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
  history.replaceState(null, '', `/live?${params}`);
  watch(keys, prefix);
});

// /live?keys=a,b&prefix=p starts watching at once (a link can be shared).
const start = new URLSearchParams(location.search);
if (start.get('keys') || start.get('prefix')) {
  keysInput.value = start.get('keys') ?? '';
  prefixInput.value = start.get('prefix') ?? '';
  form.requestSubmit();
}
