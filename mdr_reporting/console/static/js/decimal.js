// Exact sums of the API's decimal strings ("0.0075"), without binary floating point.

function parse(text) {
  const match = /^(-?)(\d*)(?:\.(\d*))?$/.exec(String(text).trim());
  if (!match) throw new Error(`not a decimal: ${text}`);
  const fraction = match[3] || "";
  const digits = BigInt((match[2] || "0") + fraction || "0");
  return { units: match[1] ? -digits : digits, scale: fraction.length };
}

// Sum of decimal strings, as a decimal string with the largest scale among them.
export function sumDecimals(values) {
  const parsed = values.filter((v) => v !== null && v !== undefined && v !== "").map(parse);
  const scale = Math.max(0, ...parsed.map((p) => p.scale));
  let total = 0n;
  for (const p of parsed) total += p.units * 10n ** BigInt(scale - p.scale);
  const negative = total < 0n;
  const digits = (negative ? -total : total).toString().padStart(scale + 1, "0");
  const whole = digits.slice(0, digits.length - scale);
  const text = scale ? `${whole}.${digits.slice(digits.length - scale)}` : whole;
  return negative ? `-${text}` : text;
}
