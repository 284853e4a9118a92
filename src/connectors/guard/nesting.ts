// How deep a MySQL or SQLite statement nests its parentheses, read before it is parsed. The
// grammars of sql-parser-cst backtrack through every reading of a parenthesis when a statement
// fails to parse inside nested ones, so a failing parse doubles in time with each level: bare
// parentheses 0.8 s at 20 levels and 23 s at 25 (`SELECT (((((((((((((((((((((((((7`, 33
// characters, held the event loop for 23 s), and some shapes sooner (MySQL's `CAST(CAST(...`
// and SQLite's `1 IN (1 IN (...`: 10-20 ms at 7 levels, 0.2-0.5 s at 12). `1 LIKE (1 LIKE (...`
// costs as much even when it parses (the optional ESCAPE), about 11 ms a group 6 deep, and a
// statement can hold several. So what is parsed inline is bounded by a weight, each opening
// parenthesis counting 2^depth (a group 6 deep weighs 126); a heavier statement is parsed in a
// worker thread within the parse time budget, and one deeper than any query needs is refused
// unparsed. PostgreSQL's parser (libpg-query) has no such cost.

/** Deeper than this, refused unparsed: a failing parse would cost a parser thread seconds, and
 * two users sending such statements would hold both threads. */
export const MAX_PAREN_DEPTH = 12;
/** Up to this weight a parse costs about 10 ms at most: inline. */
export const INLINE_PAREN_WEIGHT = 128;

export interface ParenNesting {
  /** The deepest nesting. */
  depth: number;
  /** Each opening parenthesis counted 2^(its depth): what a parse may cost, roughly. */
  weight: number;
}

/**
 * How `sql` nests its parentheses outside quoted text and comments, as MySQL and SQLite lex
 * them ('...' and "..." with doubled quotes, and backslash escapes in MySQL; `...`, and [...]
 * in SQLite; -- and /* comments, and # in MySQL). A cost estimate, not a parse: text it
 * misreads only moves a statement between inline, a worker and refused, and what is refused for
 * its depth would have failed to parse in time anyway.
 */
export function parenNesting(sql: string, dialect: "mysql" | "sqlite"): ParenNesting {
  let depth = 0;
  let deepest = 0;
  let weight = 0;
  const skipTo = (end: string, from: number) => {
    const at = sql.indexOf(end, from);
    return at < 0 ? sql.length : at + end.length - 1;
  };
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i];
    if (c === "(") {
      deepest = Math.max(deepest, ++depth);
      weight += 2 ** depth;
    } else if (c === ")") depth = Math.max(0, depth - 1);
    else if (c === "'" || c === '"' || c === "`" || (c === "[" && dialect === "sqlite")) {
      const close = c === "[" ? "]" : c;
      const escapes = dialect === "mysql" && c !== "`";
      for (i++; i < sql.length && sql[i] !== close; i++) if (escapes && sql[i] === "\\") i++;
    } else if ((c === "-" && sql[i + 1] === "-") || (c === "#" && dialect === "mysql")) i = skipTo("\n", i);
    else if (c === "/" && sql[i + 1] === "*") i = skipTo("*/", i + 2);
  }
  return { depth: deepest, weight };
}
