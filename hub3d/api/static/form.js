// A parameter form generated from a model's JSON schema (as /models gives it): numbers with
// their ranges, enums as choices, booleans as switches, defaults filled in. Values are checked
// here before anything is sent.

function lookup(root, ref) {
  // "#/$defs/Name" → root.$defs.Name
  return ref.replace(/^#\//, "").split("/").reduce((node, key) => (node || {})[key], root);
}

// Flatten $ref, single allOf, and "X or null" anyOf into one plain schema.
function resolve(schema, root) {
  const own = { ...schema };
  let target = schema;
  if (schema.$ref) target = lookup(root, schema.$ref) || {};
  else if (schema.allOf && schema.allOf.length === 1) target = resolve(schema.allOf[0], root);
  let nullable = false;
  const variants = schema.anyOf || schema.oneOf;
  if (variants) {
    const real = variants.filter((v) => v.type !== "null");
    nullable = real.length < variants.length;
    if (real.every((v) => "const" in v)) target = { enum: real.map((v) => v.const) };
    else if (real.length === 1) target = resolve(real[0], root);
  }
  delete own.$ref; delete own.allOf; delete own.anyOf; delete own.oneOf;
  return { ...target, ...own, nullable: nullable || target.nullable };
}

function kindOf(s) {
  if (Array.isArray(s.enum)) return "enum";
  if (s.type === "boolean") return "bool";
  if (s.type === "integer") return "int";
  if (s.type === "number") return "number";
  return "text";
}

export function fieldsFromSchema(schema) {
  const props = (schema && schema.properties) || {};
  return Object.entries(props).map(([name, raw]) => {
    const s = resolve(raw, schema);
    return {
      name, kind: kindOf(s), label: s.title || name, help: s.description || "",
      options: s.enum, default: s.default, nullable: !!s.nullable,
      min: s.minimum, max: s.maximum, exclMin: s.exclusiveMinimum, exclMax: s.exclusiveMaximum,
      minLength: s.minLength, maxLength: s.maxLength, pattern: s.pattern,
    };
  });
}

function range(f) {
  const lo = f.min ?? f.exclMin, hi = f.max ?? f.exclMax;
  if (lo !== undefined && hi !== undefined) return `${lo} to ${hi}`;
  if (lo !== undefined) return `at least ${lo}`;
  if (hi !== undefined) return `at most ${hi}`;
  return "";
}

// The message for a bad value, or "" when it is fine.
export function check(f, text) {
  if (text === "") return f.nullable || f.default === undefined ? "" : `${f.label}: enter a value`;
  if (f.kind === "int" || f.kind === "number") {
    const n = Number(text);
    if (!Number.isFinite(n)) return `${f.label}: "${text}" is not a number`;
    if (f.kind === "int" && !Number.isInteger(n)) return `${f.label}: must be a whole number`;
    const bad = (f.min !== undefined && n < f.min) || (f.max !== undefined && n > f.max) ||
      (f.exclMin !== undefined && n <= f.exclMin) || (f.exclMax !== undefined && n >= f.exclMax);
    if (bad) return `${f.label}: ${text} is out of range (${range(f)})`;
  }
  if (f.kind === "text") {
    if (f.minLength !== undefined && text.length < f.minLength) return `${f.label}: too short`;
    if (f.maxLength !== undefined && text.length > f.maxLength) return `${f.label}: too long`;
    if (f.pattern && !new RegExp(f.pattern).test(text)) return `${f.label}: not a valid value`;
  }
  return "";
}

function control(f) {
  if (f.kind === "enum") {
    const select = document.createElement("select");
    if (f.nullable) select.append(new Option("(auto)", ""));
    for (const value of f.options) select.append(new Option(String(value), String(value)));
    select.value = f.default == null ? "" : String(f.default);
    return select;
  }
  const input = document.createElement("input");
  if (f.kind === "bool") {
    input.type = "checkbox";
    input.checked = !!f.default;
    return input;
  }
  input.type = f.kind === "text" ? "text" : "number";
  if (f.kind === "int") input.step = "1";
  if (f.kind === "number") input.step = "any";
  if (f.min !== undefined) input.min = String(f.min);
  if (f.max !== undefined) input.max = String(f.max);
  input.value = f.default == null ? "" : String(f.default);
  if (f.default == null && f.nullable) input.placeholder = "auto";
  return input;
}

// Build the form into `container`; returns read(): {values, errors}.
export function buildForm(container, schema) {
  container.replaceChildren();
  const fields = fieldsFromSchema(schema);
  const inputs = new Map();
  for (const f of fields) {
    const row = document.createElement("label");
    row.className = `field field-${f.kind}`;
    const name = document.createElement("span");
    name.textContent = f.label;
    const input = control(f);
    input.name = f.name;
    input.title = [f.help, range(f) && `range ${range(f)}`].filter(Boolean).join(" · ");
    const hint = document.createElement("small");
    hint.textContent = range(f);
    row.append(name, input, hint);
    container.append(row);
    inputs.set(f.name, { f, input, row });
    input.addEventListener("input", () => row.classList.remove("invalid"));
  }
  return function read() {
    const values = {}, errors = [];
    for (const { f, input, row } of inputs.values()) {
      if (f.kind === "bool") { values[f.name] = input.checked ? "true" : "false"; continue; }
      const text = input.value.trim();
      const error = check(f, text);
      row.classList.toggle("invalid", !!error);
      if (error) errors.push(error);
      else if (text !== "") values[f.name] = text;
    }
    return { values, errors };
  };
}
