// The npm `openai` package against a live gateway: prints one JSON object with what each call gave.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.GATEWAY_URL, apiKey: process.env.GATEWAY_KEY, maxRetries: 0 });
const out = {};
const weather = {
  type: "function",
  name: "get_weather",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
};

const plain = await client.responses.create({ model: "openai/gpt-4o", input: "Say hello" });
out.plain = { text: plain.output_text, usage: plain.usage, id: plain.id };

const structured = await client.responses.create({
  model: "openai/gpt-4o",
  input: "Answer in JSON",
  text: { format: { type: "json_schema", name: "answer", schema: { type: "object" } } },
});
out.structured = structured.output_text;

const called = await client.responses.create({ model: "openai/gpt-4o", input: "Weather in Oslo?", tools: [weather] });
const call = called.output[0];
const followed = await client.responses.create({
  model: "openai/gpt-4o",
  previous_response_id: called.id,
  input: [{ type: "function_call_output", call_id: call.call_id, output: '{"sky":"sunny"}' }],
  tools: [weather],
});
out.call = { type: call.type, name: call.name, arguments: call.arguments };
out.followed = followed.output_text;

const stream = client.responses.stream({ model: "openai/gpt-4o", input: "Stream hello" });
const kinds = [];
for await (const event of stream) kinds.push([event.type, event.sequence_number]);
const final = await stream.finalResponse();
out.stream = { kinds, text: final.output_text, credits: final.usage.credits };

const floats = await client.embeddings.create({
  model: "openai/text-embedding-3-small",
  input: ["one", "two"],
  dimensions: 3,
  encoding_format: "float",
});
const decoded = await client.embeddings.create({ model: "openai/text-embedding-3-small", input: "one" });
out.embeddings = { floats: floats.data.map((d) => d.embedding), decoded: decoded.data[0].embedding };

const model = await client.models.retrieve("openai/gpt-4o");
out.model = { id: model.id, created: model.created, pricing: model.pricing };

const chat = await client.chat.completions.create({
  model: "openai/gpt-4o",
  messages: [{ role: "user", content: "Two answers" }],
  n: 2,
  logprobs: true,
  reasoning_effort: "low",
});
out.chat = { texts: chat.choices.map((c) => c.message.content), logprob: chat.choices[0].logprobs.content[0].logprob };

try {
  await client.completions.create({ model: "openai/gpt-4o", prompt: "hi" });
  out.legacy = "no error";
} catch (error) {
  out.legacy = { status: error.status, message: error.message };
}
console.log(JSON.stringify(out));
