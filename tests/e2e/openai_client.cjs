// OpenAI's official Node.js client against Tessera's HTTP API (run by
// openai_http_test with NODE_PATH at the npm client it installed). Prints
// one JSON object with what each call returned; the C++ test compares it
// with the gRPC API's answers. Environment: TESSERA_HTTP_BASE_URL (".../v1"),
// TESSERA_MODEL, TESSERA_PROMPT, TESSERA_STOP (a stop string), OPENAI_API_KEY.
const OpenAI = require('openai');

async function main() {
  const client = new OpenAI({baseURL: process.env.TESSERA_HTTP_BASE_URL, maxRetries: 0, timeout: 60000});
  const model = process.env.TESSERA_MODEL;
  const prompt = process.env.TESSERA_PROMPT;
  const out = {};
  const models = await client.models.list();
  out.models = models.data.map((m) => m.id);
  const base = {model, prompt, max_tokens: 10, temperature: 0, ignore_eos: true};
  const unary = await client.completions.create(base);
  out.unary = {text: unary.choices[0].text, finish_reason: unary.choices[0].finish_reason, usage: unary.usage};
  try {
    const withLogprobs = await client.completions.create({...base, logprobs: 2});
    out.logprobs = {status: 200, text: withLogprobs.choices[0].text, logprobs: withLogprobs.choices[0].logprobs};
  } catch (error) {
    out.logprobs = {status: error.status, message: error.message};
  }
  const stream = await client.completions.create({...base, stream: true, stream_options: {include_usage: true}});
  out.stream = {text: '', finish_reason: null, usage: null, chunks: 0};
  for await (const chunk of stream) {
    out.stream.chunks += 1;
    if (chunk.usage) out.stream.usage = chunk.usage;
    if (chunk.choices.length > 0) {
      out.stream.text += chunk.choices[0].text;
      if (chunk.choices[0].finish_reason) out.stream.finish_reason = chunk.choices[0].finish_reason;
    }
  }
  const stopped = await client.completions.create({...base, stop: [process.env.TESSERA_STOP]});
  out.stopped = {text: stopped.choices[0].text, finish_reason: stopped.choices[0].finish_reason};
  const stopped_stream = await client.completions.create({...base, stop: process.env.TESSERA_STOP, stream: true});
  out.stopped_stream = {text: '', finish_reason: null};
  for await (const chunk of stopped_stream) {
    out.stopped_stream.text += chunk.choices[0].text;
    if (chunk.choices[0].finish_reason) out.stopped_stream.finish_reason = chunk.choices[0].finish_reason;
  }
  try {
    await client.completions.create({...base, n: 2});
    out.n2 = {status: 200};
  } catch (error) {
    out.n2 = {status: error.status, message: error.message};
  }
  try {
    await client.chat.completions.create({model, messages: [{role: 'user', content: 'hi'}]});
    out.chat = {status: 200};
  } catch (error) {
    out.chat = {status: error.status, message: error.message};
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((error) => {
  process.stderr.write(`openai client failed: ${error.stack || error}\n`);
  process.exit(1);
});
