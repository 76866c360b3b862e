// JSON, regular expressions and a few hundred thousand calls under V8: prints a deterministic summary.
const data = [];
for (let i = 0; i < 20000; i++) data.push({ id: i, name: "item" + i, tags: ["a" + (i % 7), "b" + (i % 13)], v: (i * 7919) % 10007 });
const text = JSON.stringify(data);
const back = JSON.parse(text);
let total = 0;
for (const o of back) total += o.v;
const re = /item(\d+)7\b/g;
let m, count = 0;
while ((m = re.exec(text)) !== null) count += parseInt(m[1], 10) % 3;
function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
const words = text.split(/[^a-z0-9]+/).filter(w => w.length > 0);
const freq = new Map();
for (const w of words) freq.set(w[0], (freq.get(w[0]) || 0) + 1);
console.log(text.length, total, count, fib(25), [...freq.entries()].sort().join(","));
