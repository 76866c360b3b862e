-- LuaJIT work (traces compiled at run time): recursion, table sorting, string matching; prints a deterministic summary.
local function fib(n) if n < 2 then return n end return fib(n-1) + fib(n-2) end
local t = {}
for i = 1, 1000000 do t[i] = (i * 7919) % 10007 end
table.sort(t)
local s = 0
for i = 1, #t, 3 do s = s + t[i] end
local words = {}
for w in string.gmatch(string.rep("the quick brown fox jumps over the lazy dog ", 100000), "%a+") do
  words[w] = (words[w] or 0) + 1
end
local keys = {}
for k in pairs(words) do keys[#keys+1] = k end
table.sort(keys)
for _, k in ipairs(keys) do io.write(k, "=", words[k], " ") end
print()
print(fib(32), s)
