// The official `openai` npm client (tests/serve/openai/package.json pins it;
// scripts/deps_npm.sh installs it), unmodified, against a running `qai serve`.
// Driven by tests/serve/test_openai_client.sh, which starts the server and
// passes in the environment:
//   QAI_BASE_URL      http://127.0.0.1:PORT/v1
//   QAI_API_KEY       a valid key (the server runs with --auth keys)
//   QAI_MODEL         the model's name on the server
//   QAI_PROMPT        a completion prompt; QAI_MAX_TOKENS its token budget
//   QAI_RUN_TEXT      `qai run --temp 0 -n QAI_MAX_TOKENS` of QAI_PROMPT
//   QAI_PROMPT_TOKENS `qai tokenize --ids` count of QAI_PROMPT (BOS included)
//   QAI_CHAT_USER     a user message; QAI_CHAT_RUN_TEXT `qai run --temp 0` of
//                     that message in the chatml format the server is told to use
//   QAI_N_EMBD        the model's embedding width (llama.embedding_length)
// Prints one line per failed check and ends with "N passed, N failed"; exits 1
// when a check failed.
import { createRequire } from 'node:module';

const require = createRequire(new URL('./openai/', import.meta.url));
let OpenAI;
try {
  OpenAI = require('openai');
} catch (e) {
  console.error('openai_client.mjs: the openai package is not installed: run scripts/deps_npm.sh (' + e.message + ')');
  process.exit(1);
}

const env = (k) => {
  const v = process.env[k];
  if (v === undefined) {
    console.error(`openai_client.mjs: ${k} is not set`);
    process.exit(2);
  }
  return v;
};
const BASE = env('QAI_BASE_URL');
const KEY = env('QAI_API_KEY');
const MODEL = env('QAI_MODEL');
const PROMPT = env('QAI_PROMPT');
const MAX_TOKENS = Number(env('QAI_MAX_TOKENS'));
const RUN_TEXT = env('QAI_RUN_TEXT');
const PROMPT_TOKENS = Number(env('QAI_PROMPT_TOKENS'));
const CHAT_USER = env('QAI_CHAT_USER');
const CHAT_RUN_TEXT = env('QAI_CHAT_RUN_TEXT');
const N_EMBD = Number(env('QAI_N_EMBD'));

const client = new OpenAI.OpenAI({ baseURL: BASE, apiKey: KEY, maxRetries: 0, timeout: 60_000 });

let passed = 0, failed = 0;
const fail = (name, msg) => {
  failed++;
  console.error(`FAIL: ${name}: ${msg}`);
};
const check = (name, cond, msg = '') => (cond ? passed++ : fail(name, msg || 'condition is false'));
const eq = (name, got, want) => {
  const g = JSON.stringify(got), w = JSON.stringify(want);
  if (g === w) passed++;
  else fail(name, `got ${g}, want ${w}`);
};
// Runs one group of checks; an exception (an HTTP error, a thrown assertion)
// fails the group with the exception's message and the run goes on.
async function section(name, fn) {
  try {
    await fn();
  } catch (e) {
    const status = e && e.status ? ` (HTTP ${e.status})` : '';
    fail(name, `threw ${e && e.constructor ? e.constructor.name : typeof e}${status}: ${e && e.message}`);
  }
}
const usageOk = (name, u, promptTokens, completionTokens) => {
  check(`${name}: usage present`, u && typeof u === 'object', `usage is ${JSON.stringify(u)}`);
  if (!u) return;
  for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens'])
    check(`${name}: usage.${k} is an integer`, Number.isInteger(u[k]), `usage.${k} = ${u[k]}`);
  eq(`${name}: total_tokens = prompt + completion`, u.total_tokens, u.prompt_tokens + u.completion_tokens);
  if (promptTokens !== undefined) eq(`${name}: usage.prompt_tokens`, u.prompt_tokens, promptTokens);
  if (completionTokens !== undefined) eq(`${name}: usage.completion_tokens`, u.completion_tokens, completionTokens);
};
// Text of each choice of a completions stream, by index; the last usage seen.
async function collectCompletionStream(stream) {
  const texts = [], finish = [], lp = [];
  let usage = null, chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      texts[c.index] = (texts[c.index] ?? '') + (c.text ?? '');
      if (c.finish_reason) finish[c.index] = c.finish_reason;
      if (c.logprobs && c.logprobs.tokens) (lp[c.index] ??= []).push(...c.logprobs.token_logprobs);
    }
  }
  return { texts, finish, usage, chunks, lp };
}

// ---------------------------------------------------------------------------
// Part 1: what qai serve does today — models, completions, chat, streaming,
// n + seed, logprobs, stop, usage, errors.
// ---------------------------------------------------------------------------

await section('models.list', async () => {
  const ids = [];
  for await (const m of client.models.list()) {
    ids.push(m.id);
    eq(`models.list: ${m.id}.object`, m.object, 'model');
    check(`models.list: ${m.id}.created`, Number.isInteger(m.created) && m.created > 0, `created = ${m.created}`);
    check(`models.list: ${m.id}.owned_by`, typeof m.owned_by === 'string', `owned_by = ${m.owned_by}`);
  }
  eq('models.list: ids', ids, [MODEL]);
  const one = await client.models.retrieve(MODEL).catch((e) => e);
  // GET /v1/models/{id} is optional for OpenAI-compatible servers; when it answers, it must be this model
  if (!(one instanceof Error)) eq('models.retrieve: id', one.id, MODEL);
});

await section('completions greedy', async () => {
  const r = await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: MAX_TOKENS, temperature: 0 });
  eq('completions: object', r.object, 'text_completion');
  check('completions: id', typeof r.id === 'string' && r.id.length > 0, `id = ${r.id}`);
  eq('completions: model', r.model, MODEL);
  eq('completions: one choice', r.choices.length, 1);
  eq('completions: text = qai run --temp 0', r.choices[0].text, RUN_TEXT);
  eq('completions: index', r.choices[0].index, 0);
  eq('completions: finish_reason', r.choices[0].finish_reason, 'length');
  usageOk('completions', r.usage, PROMPT_TOKENS, MAX_TOKENS);

  const s = await client.completions.create({
    model: MODEL, prompt: PROMPT, max_tokens: MAX_TOKENS, temperature: 0, stream: true,
    stream_options: { include_usage: true },
  });
  const got = await collectCompletionStream(s);
  eq('completions stream: text = qai run --temp 0', got.texts[0], RUN_TEXT);
  eq('completions stream: = non-stream', got.texts[0], r.choices[0].text);
  eq('completions stream: finish_reason', got.finish[0], 'length');
  check('completions stream: several chunks', got.chunks > 2, `${got.chunks} chunks`);
  usageOk('completions stream', got.usage, PROMPT_TOKENS, MAX_TOKENS);

  // a prompt given as an array of token ids is the same request
  const ids = (await fetch(`${BASE}/tokenize`, {
    method: 'POST', headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: MODEL, content: PROMPT, add_special: true }),
  }).then((x) => x.json())).tokens;
  eq('tokenize: count = qai tokenize', ids.length, PROMPT_TOKENS);
  const t = await client.completions.create({ model: MODEL, prompt: ids, max_tokens: MAX_TOKENS, temperature: 0 });
  eq('completions: token-id prompt = text prompt', t.choices[0].text, RUN_TEXT);
});

await section('chat greedy', async () => {
  const messages = [{ role: 'user', content: CHAT_USER }];
  const r = await client.chat.completions.create({ model: MODEL, messages, max_tokens: MAX_TOKENS, temperature: 0 });
  eq('chat: object', r.object, 'chat.completion');
  check('chat: id', typeof r.id === 'string' && r.id.length > 0, `id = ${r.id}`);
  eq('chat: role', r.choices[0].message.role, 'assistant');
  const content = r.choices[0].message.content;
  eq('chat: content = qai run --temp 0 of the chatml prompt', content, CHAT_RUN_TEXT.split('<|im_end|>')[0]);
  check('chat: finish_reason', ['length', 'stop'].includes(r.choices[0].finish_reason), r.choices[0].finish_reason);
  usageOk('chat', r.usage);
  check('chat: completion_tokens <= max_tokens', r.usage.completion_tokens <= MAX_TOKENS, `${r.usage.completion_tokens}`);

  // stream reassembly: the client's own stream iterator, and its ChatCompletionStream helper
  const s = await client.chat.completions.create({
    model: MODEL, messages, max_tokens: MAX_TOKENS, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  let text = '', role = null, finish = null, usage = null, n = 0;
  for await (const chunk of s) {
    n++;
    eq('chat stream: chunk object', chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta.role) role = c.delta.role;
      text += c.delta.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  eq('chat stream: role', role, 'assistant');
  eq('chat stream: reassembled = non-stream', text, content);
  eq('chat stream: finish_reason = non-stream', finish, r.choices[0].finish_reason);
  check('chat stream: several chunks', n > 2, `${n} chunks`);
  usageOk('chat stream', usage, r.usage.prompt_tokens, r.usage.completion_tokens);

  const helper = client.chat.completions.stream({ model: MODEL, messages, max_tokens: MAX_TOKENS, temperature: 0 });
  const final = await helper.finalChatCompletion();
  eq('chat stream helper: final content = non-stream', final.choices[0].message.content, content);

  // system + multi-turn with content parts is accepted and deterministic
  const turns = [
    { role: 'system', content: 'You tell short stories.' },
    { role: 'user', content: [{ type: 'text', text: CHAT_USER }] },
    { role: 'assistant', content: content },
    { role: 'user', content: 'And then?' },
  ];
  const a = await client.chat.completions.create({ model: MODEL, messages: turns, max_tokens: 8, temperature: 0 });
  const b = await client.chat.completions.create({ model: MODEL, messages: turns, max_tokens: 8, temperature: 0 });
  eq('chat multi-turn: deterministic at temperature 0', a.choices[0].message.content, b.choices[0].message.content);
  check('chat multi-turn: longer prompt', a.usage.prompt_tokens > r.usage.prompt_tokens,
    `${a.usage.prompt_tokens} <= ${r.usage.prompt_tokens}`);
});

await section('n and seed', async () => {
  const req = { model: MODEL, prompt: PROMPT, max_tokens: 12, temperature: 1, n: 2, seed: 1234 };
  const a = await client.completions.create(req);
  const b = await client.completions.create(req);
  eq('n=2: two choices', a.choices.length, 2);
  eq('n=2: indices', a.choices.map((c) => c.index).sort(), [0, 1]);
  eq('n=2 seed: same seed, same texts', b.choices.map((c) => c.text), a.choices.map((c) => c.text));
  const byIndex = (r, i) => r.choices.find((c) => c.index === i).text;
  const c1 = await client.completions.create({ ...req, n: 1, seed: 1235 });
  eq('n=2 seed: choice 1 = n=1 with seed+1', c1.choices[0].text, byIndex(a, 1));
  const c0 = await client.completions.create({ ...req, n: 1 });
  eq('n=2 seed: choice 0 = n=1 with seed', c0.choices[0].text, byIndex(a, 0));
  // the prompt counts once, completion tokens are summed over both choices
  const bothFull = a.choices.every((c) => c.finish_reason === 'length');
  usageOk('n=2', a.usage, PROMPT_TOKENS, bothFull ? 24 : undefined);
  check('n=2: completion_tokens summed', bothFull || (a.usage.completion_tokens < 24 && a.usage.completion_tokens > 1),
    `${a.usage.completion_tokens}`);
  const s = await client.completions.create({ ...req, stream: true });
  const got = await collectCompletionStream(s);
  eq('n=2 stream: per-index reassembly = non-stream', got.texts, [byIndex(a, 0), byIndex(a, 1)]);
  const chat = await client.chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: CHAT_USER }], max_tokens: 8, temperature: 1, n: 2, seed: 99,
  });
  eq('chat n=2: two choices', chat.choices.length, 2);
});

await section('logprobs', async () => {
  const r = await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: MAX_TOKENS, temperature: 0, logprobs: 2 });
  const lp = r.choices[0].logprobs;
  check('completions logprobs: present', lp && Array.isArray(lp.tokens), JSON.stringify(lp));
  eq('completions logprobs: one per token', [lp.tokens.length, lp.token_logprobs.length, lp.top_logprobs.length, lp.text_offset.length],
    [MAX_TOKENS, MAX_TOKENS, MAX_TOKENS, MAX_TOKENS]);
  eq('completions logprobs: tokens join to the text', lp.tokens.join(''), r.choices[0].text);
  let off = 0, okOff = true, okTop = true, okGreedy = true, okRange = true;
  for (let i = 0; i < lp.tokens.length; i++) {
    if (lp.text_offset[i] !== off) okOff = false;
    off += lp.tokens[i].length;
    const top = Object.entries(lp.top_logprobs[i]);
    if (top.length < 1 || top.length > 2) okTop = false;
    const best = Math.max(...top.map(([, v]) => v));
    if (Math.abs(lp.token_logprobs[i] - best) > 1e-6) okGreedy = false; // greedy picks the most likely
    if (!(lp.token_logprobs[i] <= 0) || top.reduce((s, [, v]) => s + Math.exp(v), 0) > 1 + 1e-5) okRange = false;
  }
  check('completions logprobs: text_offset', okOff, JSON.stringify(lp.text_offset));
  check('completions logprobs: 1-2 top alternatives', okTop, JSON.stringify(lp.top_logprobs));
  check('completions logprobs: greedy token is the top one', okGreedy, JSON.stringify([lp.token_logprobs, lp.top_logprobs]));
  check('completions logprobs: probabilities in range', okRange, JSON.stringify(lp.token_logprobs));

  const s = await client.completions.create({
    model: MODEL, prompt: PROMPT, max_tokens: MAX_TOKENS, temperature: 0, logprobs: 2, stream: true,
  });
  const got = await collectCompletionStream(s);
  eq('completions stream logprobs = non-stream', got.lp[0], lp.token_logprobs);

  const c = await client.chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: CHAT_USER }], max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 3,
  });
  const content = c.choices[0].logprobs && c.choices[0].logprobs.content;
  check('chat logprobs: content array', Array.isArray(content) && content.length === c.usage.completion_tokens,
    JSON.stringify(c.choices[0].logprobs));
  eq('chat logprobs: tokens join to the message', content.map((t) => t.token).join(''), c.choices[0].message.content);
  let okBytes = true, okSorted = true, okTop3 = true;
  for (const t of content) {
    if (JSON.stringify(t.bytes) !== JSON.stringify([...Buffer.from(t.token, 'utf8')])) okBytes = false;
    if (t.top_logprobs.length !== 3) okTop3 = false;
    for (let i = 1; i < t.top_logprobs.length; i++) if (t.top_logprobs[i].logprob > t.top_logprobs[i - 1].logprob) okSorted = false;
    if (Math.abs(t.top_logprobs[0].logprob - t.logprob) > 1e-6) okSorted = false;
  }
  check('chat logprobs: bytes are the UTF-8 of the token', okBytes, JSON.stringify(content));
  check('chat logprobs: 3 top alternatives', okTop3, JSON.stringify(content));
  check('chat logprobs: sorted, greedy token first', okSorted, JSON.stringify(content));
});

await section('stop', async () => {
  // a stop string taken from the middle of the greedy text: the answer ends right before it
  const at = Math.floor(RUN_TEXT.length / 2);
  const stop = RUN_TEXT.slice(at, at + 4);
  const want = RUN_TEXT.slice(0, RUN_TEXT.indexOf(stop));
  const req = { model: MODEL, prompt: PROMPT, max_tokens: MAX_TOKENS, temperature: 0, stop: ['\u0001never', stop] };
  const r = await client.completions.create(req);
  eq(`stop ${JSON.stringify(stop)}: text`, r.choices[0].text, want);
  eq('stop: finish_reason', r.choices[0].finish_reason, 'stop');
  const got = await collectCompletionStream(await client.completions.create({ ...req, stream: true }));
  eq('stop stream: text', got.texts[0], want);
  eq('stop stream: finish_reason', got.finish[0], 'stop');
  const c = await client.chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: CHAT_USER }], max_tokens: MAX_TOKENS, temperature: 0, stop: 'e',
  });
  const full = CHAT_RUN_TEXT.split('<|im_end|>')[0];
  eq('chat stop "e": content', c.choices[0].message.content, full.slice(0, full.indexOf('e') < 0 ? full.length : full.indexOf('e')));
});

await section('errors', async () => {
  const e1 = await client.completions.create({ model: 'no-such-model', prompt: 'x', max_tokens: 1 }).then(() => null, (e) => e);
  check('unknown model: NotFoundError', e1 instanceof OpenAI.NotFoundError, `got ${e1 && e1.constructor.name}: ${e1 && e1.message}`);
  eq('unknown model: status', e1 && e1.status, 404);
  eq('unknown model: code', e1 && e1.code, 'model_not_found');
  eq('unknown model: param', e1 && e1.param, 'model');
  const e1c = await client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] })
    .then(() => null, (e) => e);
  check('unknown model (chat): NotFoundError', e1c instanceof OpenAI.NotFoundError, `got ${e1c && e1c.constructor.name}`);

  const bad = new OpenAI.OpenAI({ baseURL: BASE, apiKey: 'qai-not-a-real-key', maxRetries: 0, timeout: 30_000 });
  const e2 = await bad.completions.create({ model: MODEL, prompt: 'x', max_tokens: 1 }).then(() => null, (e) => e);
  check('bad key: AuthenticationError', e2 instanceof OpenAI.AuthenticationError, `got ${e2 && e2.constructor.name}: ${e2 && e2.message}`);
  eq('bad key: status', e2 && e2.status, 401);
  eq('bad key: code', e2 && e2.code, 'invalid_api_key');
  const e2m = await bad.models.list().then(() => null, (e) => e);
  check('bad key on /v1/models: AuthenticationError', e2m instanceof OpenAI.AuthenticationError, `got ${e2m && e2m.constructor.name}`);

  const e3 = await client.completions.create({ model: MODEL, prompt: 'x', max_tokens: 1, temperature: 'hot' }).then(() => null, (e) => e);
  check('wrong type: BadRequestError', e3 instanceof OpenAI.BadRequestError, `got ${e3 && e3.constructor.name}`);
  eq('wrong type: param', e3 && e3.param, 'temperature');
  const e4 = await client.chat.completions.create({ model: MODEL, messages: [] }).then(() => null, (e) => e);
  check('empty messages: BadRequestError', e4 instanceof OpenAI.BadRequestError, `got ${e4 && e4.constructor.name}`);
});

// ---------------------------------------------------------------------------
// Part 2: structured output (response_format json_schema / json_object),
// tool calls (tool_choice "required" and named, streamed and not) and
// embeddings (string and array input; the client's default base64 encoding
// and explicit float/base64), all checked against OpenAI's documented shapes.
// A server without these answers 400 "unsupported" and this part fails.
// ---------------------------------------------------------------------------

const personSchema = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 12 },
    age: { type: 'integer' },
    mood: { type: 'string', enum: ['happy', 'sad'] },
  },
  required: ['name', 'age', 'mood'],
  additionalProperties: false,
};
// A small validator for the schema above (enough to catch any deviation).
function validPerson(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v) &&
    Object.keys(v).sort().join(',') === 'age,mood,name' &&
    typeof v.name === 'string' && v.name.length <= 12 &&
    Number.isInteger(v.age) &&
    (v.mood === 'happy' || v.mood === 'sad');
}

await section('response_format json_schema', async () => {
  const req = {
    model: MODEL, messages: [{ role: 'user', content: 'Describe a person as JSON.' }], max_tokens: 400,
    response_format: { type: 'json_schema', json_schema: { name: 'person', strict: true, schema: personSchema } },
  };
  for (const [label, extra] of [['greedy', { temperature: 0 }], ['sampled', { temperature: 1, seed: 7, n: 3 }]]) {
    const r = await client.chat.completions.create({ ...req, ...extra });
    for (const c of r.choices) {
      let v;
      try {
        v = JSON.parse(c.message.content);
      } catch (e) {
        fail(`json_schema ${label}: content parses`, `${JSON.stringify(c.message.content)}: ${e.message}`);
        continue;
      }
      passed++;
      check(`json_schema ${label}: validates`, validPerson(v), JSON.stringify(v));
      eq(`json_schema ${label}: finish_reason`, c.finish_reason, 'stop');
    }
  }
  const s = await client.chat.completions.create({ ...req, temperature: 0, stream: true });
  let text = '';
  for await (const chunk of s) for (const c of chunk.choices) text += c.delta.content ?? '';
  const r = await client.chat.completions.create({ ...req, temperature: 0 });
  eq('json_schema stream: reassembled = non-stream', text, r.choices[0].message.content);
  // json_object: any object. The tiny model rarely closes one, so an answer cut
  // by max_tokens ("length", which OpenAI documents may be incomplete) need only
  // have begun an object; one that stopped must parse as an object.
  const o = await client.chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'JSON please' }], max_tokens: 200, temperature: 1, seed: 1, n: 4,
    response_format: { type: 'json_object' },
  });
  for (const c of o.choices) {
    const text = c.message.content;
    if (c.finish_reason === 'length') {
      check('json_object (cut): begins an object', /^\s*\{/.test(text), JSON.stringify(text));
      continue;
    }
    let ov;
    try {
      ov = JSON.parse(text);
    } catch (e) {
      ov = e;
    }
    check('json_object: an object', ov && typeof ov === 'object' && !(ov instanceof Error) && !Array.isArray(ov), JSON.stringify(text));
  }
});

await section('tools tool_choice required', async () => {
  const tools = [{
    type: 'function',
    function: {
      name: 'get_weather', description: 'The weather in a city', strict: true,
      parameters: {
        type: 'object', properties: { city: { type: 'string', maxLength: 16 }, days: { type: 'integer' } },
        required: ['city', 'days'], additionalProperties: false,
      },
    },
  }];
  const req = { model: MODEL, messages: [{ role: 'user', content: 'Weather in Paris?' }], tools, tool_choice: 'required', max_tokens: 400 };
  const r = await client.chat.completions.create({ ...req, temperature: 0 });
  const m = r.choices[0].message;
  eq('tools: finish_reason', r.choices[0].finish_reason, 'tool_calls');
  check('tools: tool_calls array', Array.isArray(m.tool_calls) && m.tool_calls.length >= 1, JSON.stringify(m));
  for (const tc of m.tool_calls) {
    check('tools: id', typeof tc.id === 'string' && tc.id.length > 0, JSON.stringify(tc));
    eq('tools: type', tc.type, 'function');
    eq('tools: function.name', tc.function.name, 'get_weather');
    eq('tools: arguments is a string', typeof tc.function.arguments, 'string');
    let a = null;
    try {
      a = JSON.parse(tc.function.arguments);
    } catch (e) {
      fail('tools: arguments parse', `${JSON.stringify(tc.function.arguments)}: ${e.message}`);
    }
    check('tools: arguments validate', a && Object.keys(a).sort().join(',') === 'city,days' && typeof a.city === 'string' &&
      a.city.length <= 16 && Number.isInteger(a.days), JSON.stringify(a));
  }
  // streaming: tool_calls deltas by index reassemble (by the client's own helper) to the same call
  const final = await client.chat.completions.stream({ ...req, temperature: 0 }).finalChatCompletion();
  const fm = final.choices[0].message;
  eq('tools stream: reassembled calls = non-stream', (fm.tool_calls || []).map((t) => [t.type, t.function.name, t.function.arguments]),
    m.tool_calls.map((t) => [t.type, t.function.name, t.function.arguments]));
  // a named function
  const named = await client.chat.completions.create({
    ...req, temperature: 1, seed: 3, tool_choice: { type: 'function', function: { name: 'get_weather' } },
  });
  eq('tools named: function.name', named.choices[0].message.tool_calls?.[0]?.function?.name, 'get_weather');
});

await section('embeddings', async () => {
  const finite = (v) => Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isFinite(x));
  // default: the client asks for encoding_format "base64" and decodes it to floats itself
  const one = await client.embeddings.create({ model: MODEL, input: 'Once upon a time' });
  eq('embeddings: object', one.object, 'list');
  eq('embeddings: one item', one.data.length, 1);
  eq('embeddings: item object', one.data[0].object, 'embedding');
  eq('embeddings: item index', one.data[0].index, 0);
  eq('embeddings: width = n_embd (base64 decoded by the client)', one.data[0].embedding.length, N_EMBD);
  check('embeddings: finite numbers', finite(one.data[0].embedding), JSON.stringify(one.data[0].embedding).slice(0, 200));
  check('embeddings: not all zero', one.data[0].embedding.some((x) => x !== 0));
  check('embeddings: usage.prompt_tokens', one.usage && one.usage.prompt_tokens > 0, JSON.stringify(one.usage));
  check('embeddings: usage.total_tokens', one.usage && one.usage.total_tokens === one.usage.prompt_tokens, JSON.stringify(one.usage));

  const many = await client.embeddings.create({ model: MODEL, input: ['Once upon a time', 'The cat sat on the mat'] });
  eq('embeddings array: two items', many.data.map((d) => d.index), [0, 1]);
  const maxdiff = (a, b) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
  check('embeddings array: item 0 = the single input', maxdiff(many.data[0].embedding, one.data[0].embedding) < 1e-4,
    `max difference ${maxdiff(many.data[0].embedding, one.data[0].embedding)}`);
  check('embeddings array: different texts differ', maxdiff(many.data[0].embedding, many.data[1].embedding) > 1e-3);

  const f = await client.embeddings.create({ model: MODEL, input: 'Once upon a time', encoding_format: 'float' });
  check('embeddings float: numbers on the wire', finite(f.data[0].embedding), typeof f.data[0].embedding);
  check('embeddings float = base64', f.data[0].embedding.length === N_EMBD && maxdiff(f.data[0].embedding, one.data[0].embedding) < 1e-5,
    `max difference ${maxdiff(f.data[0].embedding, one.data[0].embedding)}`);
  const b = await client.embeddings.create({ model: MODEL, input: 'Once upon a time', encoding_format: 'base64' });
  const raw = b.data[0].embedding;
  check('embeddings base64: a string on the wire', typeof raw === 'string', typeof raw);
  if (typeof raw === 'string') eq('embeddings base64: 4 bytes per float', Buffer.from(raw, 'base64').length, 4 * N_EMBD);
  const e = await client.embeddings.create({ model: 'no-such-model', input: 'x' }).then(() => null, (x) => x);
  check('embeddings unknown model: NotFoundError', e instanceof OpenAI.NotFoundError, `got ${e && e.constructor.name}`);
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
