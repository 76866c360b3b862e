-- Floating point through Lua's VM: series, trigonometry, a Mandelbrot set, a matrix product,
-- sorting, string formatting and parsing of doubles, integer/float conversions.
local fmt = string.format
local n = tonumber(arg[1]) or 200

local s = 0.0
for k = 1, 200000 do s = s + 1.0 / (k * k) end
print(fmt("basel %.17g  pi %.17g", s, math.sqrt(6 * s)))

local acc = 0.0
for i = 1, 20000 do
  local x = i * 0.001
  acc = acc + math.sin(x) * math.cos(x / 3) + math.exp(-x) - math.log(x + 1) + math.atan(x, 2)
end
print(fmt("trig %.17g", acc))
print(fmt("pow %.17g fmod %.17g floor %d ceil %d", 2.5 ^ 7.25, math.fmod(1e10, 7.3), math.floor(-3.5), math.ceil(-3.5)))

local rows = {}
for y = 0, 23 do
  local line = {}
  for x = 0, 63 do
    local cr, ci = -2.2 + x * 3.0 / 64, -1.2 + y * 2.4 / 24
    local zr, zi, it = 0.0, 0.0, 0
    while it < n and zr * zr + zi * zi < 4.0 do
      zr, zi = zr * zr - zi * zi + cr, 2 * zr * zi + ci
      it = it + 1
    end
    line[#line + 1] = (it == n) and "#" or string.sub(" .:-=+*%@", it % 9 + 1, it % 9 + 1)
  end
  rows[#rows + 1] = table.concat(line)
end
print(table.concat(rows, "\n"))

local N = 40
local A, B = {}, {}
for i = 1, N do
  A[i], B[i] = {}, {}
  for j = 1, N do A[i][j] = (i * 7 + j * 3) % 11 / 3.0; B[i][j] = ((i + j) % 5 - 2) * 0.75 end
end
local trace = 0.0
for i = 1, N do
  for j = 1, N do
    local v = 0.0
    for k = 1, N do v = v + A[i][k] * B[k][j] end
    if i == j then trace = trace + v end
  end
end
print(fmt("matrix trace %.17g", trace))

local xs = {}
local seed = 12345
for i = 1, 5000 do
  seed = (seed * 1103515245 + 12345) % 2147483648
  xs[i] = (seed / 2147483648.0 - 0.5) * 1e6
end
table.sort(xs)
print(fmt("sorted min %.17g max %.17g median %.17g", xs[1], xs[#xs], xs[2500]))

local parsed = 0.0
for i = 1, 2000 do
  local str = fmt("%.17g", xs[i] / 3)
  parsed = parsed + tonumber(str)
end
print(fmt("round trip sum %.17g  %a  %g  %e", parsed, parsed, parsed, parsed))
print(math.tointeger(2^53), 7 // 2, 7.0 // 2, -7 % 3, -7.5 % 2, 1e308 * 10, -(0/0) ~= -(0/0))
print(fmt("%5.2f|%-10.3e|%+.0f", math.pi, -math.huge, 2.5), math.maxinteger + 0.0, 3 | 5, 1 << 62)
