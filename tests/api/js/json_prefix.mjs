// jsonObjectPrefix(text): whether text is a JSON object, whole or cut short.
// Returns 'complete' (one object and nothing after it but white space),
// 'prefix' (the text ends inside a valid object: more characters could still
// complete it) or 'invalid'. A model whose output is constrained by a generic
// JSON grammar (response_format json_object, ollama format "json") and that
// stops at max_tokens leaves a prefix; any other output is a bug.
class End extends Error {}
class Bad extends Error {}

export function jsonObjectPrefix(text) {
  let i = 0;
  const peek = () => {
    if (i >= text.length) throw new End();
    return text[i];
  };
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++;
  };
  const expect = (c) => {
    if (peek() !== c) throw new Bad(`expected ${c} at ${i}`);
    i++;
  };
  const literal = (word) => {
    for (const c of word) expect(c);
  };
  const string = () => {
    expect('"');
    for (;;) {
      const c = peek();
      i++;
      if (c === '"') return;
      if (c === '\\') {
        const e = peek();
        i++;
        if (e === 'u') {
          for (let k = 0; k < 4; k++) {
            if (!/[0-9a-fA-F]/.test(peek())) throw new Bad(`bad \\u escape at ${i}`);
            i++;
          }
        } else if (!'"\\/bfnrt'.includes(e)) {
          throw new Bad(`bad escape at ${i}`);
        }
      } else if (c.charCodeAt(0) < 0x20) {
        throw new Bad(`control character in a string at ${i}`);
      }
    }
  };
  const number = () => {
    const start = i;
    while (i < text.length && /[-+0-9.eE]/.test(text[i])) i++;
    if (i >= text.length) {
      if (!/^-?(0|[1-9][0-9]*)?(\.[0-9]*)?([eE][-+]?[0-9]*)?$/.test(text.slice(start))) throw new Bad('bad number');
      throw new End();
    }
    if (!/^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$/.test(text.slice(start, i))) throw new Bad(`bad number at ${start}`);
  };
  const value = () => {
    ws();
    const c = peek();
    if (c === '{') return object();
    if (c === '[') return array();
    if (c === '"') return string();
    if (c === 't') return literal('true');
    if (c === 'f') return literal('false');
    if (c === 'n') return literal('null');
    if (c === '-' || (c >= '0' && c <= '9')) return number();
    throw new Bad(`unexpected ${JSON.stringify(c)} at ${i}`);
  };
  const object = () => {
    expect('{');
    ws();
    if (peek() === '}') {
      i++;
      return;
    }
    for (;;) {
      ws();
      string();
      ws();
      expect(':');
      value();
      ws();
      if (peek() === '}') {
        i++;
        return;
      }
      expect(',');
    }
  };
  const array = () => {
    expect('[');
    ws();
    if (peek() === ']') {
      i++;
      return;
    }
    for (;;) {
      value();
      ws();
      if (peek() === ']') {
        i++;
        return;
      }
      expect(',');
    }
  };
  try {
    ws();
    object();
    ws();
    return i === text.length ? 'complete' : 'invalid';
  } catch (e) {
    if (e instanceof End) return 'prefix';
    if (e instanceof Bad) return 'invalid';
    throw e;
  }
}
