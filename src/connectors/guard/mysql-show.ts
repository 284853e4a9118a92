// MySQL statements sql-parser-cst cannot parse: SHOW/DESCRIBE pass only as one closed form with
// no expressions in it; everything else is refused, named by its leading keywords when known.

import { isKeyword, isName, isPunct, isString, isWord, tokenizeMysql, type Token } from "./mysql-tokens.js";
import {
  accept,
  refuse,
  refuseLeftByEarlier,
  refuseMultiple,
  refuseSession,
  refuseTransaction,
  refuseWrite,
  type GuardVerdict,
  type Refusal,
  type GuardRule,
} from "./verdict.js";

/**
 * One form per line. `A|B` is a choice of keywords, a trailing `?` makes a step optional,
 * `$name` is an identifier (optionally qualified), `$from` is an optional `FROM|IN $name`,
 * `$like` an optional `LIKE 'pattern'`, `$column` an optional column name or pattern.
 */
const SHOW_FORMS: readonly string[] = [
  "SHOW EXTENDED? FULL? TABLES $from $like",
  "SHOW EXTENDED? FULL? COLUMNS|FIELDS FROM|IN $name $from $like",
  "SHOW EXTENDED? INDEX|INDEXES|KEYS FROM|IN $name $from",
  "SHOW DATABASES|SCHEMAS $like",
  "SHOW TABLE STATUS $from $like",
  "SHOW OPEN TABLES $from $like",
  "SHOW TRIGGERS $from $like",
  "SHOW EVENTS $from $like",
  "SHOW CREATE TABLE|VIEW|DATABASE|SCHEMA|PROCEDURE|FUNCTION|TRIGGER|EVENT $name",
  "SHOW GLOBAL|SESSION|LOCAL? VARIABLES $like",
  "SHOW GLOBAL STATUS $like",
  "SHOW PROCEDURE|FUNCTION STATUS $like",
  "SHOW FULL? PROCESSLIST",
  "SHOW STORAGE? ENGINES",
  "SHOW ENGINE INNODB STATUS",
  "SHOW CHARACTER SET $like",
  "SHOW CHARSET|COLLATION $like",
  "SHOW PLUGINS|PRIVILEGES|GRANTS",
  "SHOW MASTER|REPLICA|SLAVE STATUS",
  "SHOW ALL REPLICAS|SLAVES STATUS",
  "SHOW BINARY LOG STATUS",
  "SHOW BINARY|MASTER LOGS",
  "DESCRIBE|DESC|EXPLAIN $name $column",
];

const COMPILED_FORMS = SHOW_FORMS.map((form) => form.split(" "));

/** Forms that read what earlier statements left on the connection: the diagnostics area, the
 * session's counters (see refuseLeftByEarlier). */
const LEFT_BY_EARLIER_FORMS = ["SHOW WARNINGS|ERRORS", "SHOW SESSION|LOCAL? STATUS $like"].map((form) => form.split(" "));

/** Leading keywords of statements the parser rejects but whose nature we know. */
const KNOWN_REFUSALS: ReadonlyMap<string, GuardRule> = new Map<string, GuardRule>([
  ["SET TRANSACTION", "transaction_control"],
  ["START TRANSACTION", "transaction_control"],
  ["XA", "transaction_control"],
  ["BEGIN", "transaction_control"],
  ["COMMIT", "transaction_control"],
  ["ROLLBACK", "transaction_control"],
  ["SAVEPOINT", "transaction_control"],
  ["RELEASE", "transaction_control"],
  ["SET", "session_control"],
  ["LOCK TABLES", "session_control"],
  ["LOCK TABLE", "session_control"],
  ["UNLOCK TABLES", "session_control"],
  ["LOAD DATA", "not_read_only"],
  ["LOAD XML", "not_read_only"],
  ["USE", "session_control"],
  ["LOCK", "session_control"],
  ["UNLOCK", "session_control"],
  ["HANDLER", "session_control"],
  ["PREPARE", "session_control"],
  ["EXECUTE", "session_control"],
  ["DEALLOCATE", "session_control"],
  ...[
    "LOAD", "DO", "CALL", "INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "ALTER", "DROP", "RENAME",
    "TRUNCATE", "GRANT", "REVOKE", "FLUSH", "KILL", "RESET", "PURGE", "INSTALL", "UNINSTALL", "SHUTDOWN",
    "RESTART", "OPTIMIZE", "REPAIR", "ANALYZE", "CHECK", "CHECKSUM", "CACHE", "CHANGE", "START", "STOP",
    "IMPORT", "CLONE", "BINLOG", "BACKUP",
  ].map((word): [string, GuardRule] => [word, "not_read_only"]),
]);

function matchName(tokens: readonly Token[], at: number): number {
  if (!isName(tokens[at])) return -1;
  if (isPunct(tokens[at + 1], ".")) return isName(tokens[at + 2]) ? at + 3 : -1;
  return at + 1;
}

/** Matches one form against the whole token list; true only when every token is consumed. */
function matchForm(form: readonly string[], tokens: readonly Token[]): boolean {
  let at = 0;
  for (const step of form) {
    const token = tokens[at];
    if (step === "$name") {
      at = matchName(tokens, at);
      if (at < 0) return false;
    } else if (step === "$from") {
      if (isKeyword(token, "FROM") || isKeyword(token, "IN")) {
        at = matchName(tokens, at + 1);
        if (at < 0) return false;
      }
    } else if (step === "$like") {
      if (isKeyword(token, "LIKE")) {
        if (!isString(tokens[at + 1])) return false;
        at += 2;
      }
    } else if (step === "$column") {
      if (isString(token)) at += 1;
      else if (token !== undefined) {
        at = matchName(tokens, at);
        if (at < 0) return false;
      }
    } else {
      const optional = step.endsWith("?");
      const choices = (optional ? step.slice(0, -1) : step).split("|");
      if (isWord(token) && choices.includes(token.value)) at += 1;
      else if (!optional) return false;
    }
  }
  return at === tokens.length;
}

function leadingWords(tokens: readonly Token[]): string {
  return tokens
    .slice(0, 2)
    .filter(isWord)
    .map((token) => token.value)
    .join(" ");
}

/** The statement's first word, or "" when it starts with something else. */
function firstWord(tokens: readonly Token[]): string {
  const first = tokens[0];
  return isWord(first) ? first.value : "";
}

const isSemicolon = (token: Token): boolean => isPunct(token, ";");

function refuseKnown(tokens: readonly Token[]): GuardVerdict | undefined {
  const first = firstWord(tokens);
  const two = leadingWords(tokens);
  const label = KNOWN_REFUSALS.has(two) ? two : first;
  const rule = KNOWN_REFUSALS.get(label);
  if (rule === undefined) return undefined;
  if (rule === "transaction_control") return refuseTransaction(label);
  if (rule === "session_control") return refuseSession(label);
  return refuseWrite(label);
}

/** Judges a MySQL statement that sql-parser-cst rejected with `parseError`. */
export function classifyUnparsedMysql(sql: string, parseError: Refusal): GuardVerdict {
  const scanned = tokenizeMysql(sql);
  if (!Array.isArray(scanned)) return scanned;
  const semicolon = scanned.findIndex(isSemicolon);
  const tokens = semicolon < 0 ? scanned : scanned.slice(0, semicolon);
  if (semicolon >= 0 && semicolon < scanned.length - 1) {
    const count = scanned.filter(isSemicolon).length;
    return refuseMultiple(isSemicolon(scanned[scanned.length - 1]!) ? count : count + 1);
  }
  const first = firstWord(tokens);
  if (first === "SHOW" || first === "DESCRIBE" || first === "DESC" || first === "EXPLAIN") {
    const form = COMPILED_FORMS.find((candidate) => matchForm(candidate, tokens));
    if (form) return accept(form[0] === "SHOW" ? "show" : "describe");
    if (LEFT_BY_EARLIER_FORMS.some((candidate) => matchForm(candidate, tokens))) {
      return refuseLeftByEarlier("This SHOW", "Use SHOW GLOBAL STATUS for the server's counters.");
    }
    if (first === "SHOW") {
      return refuse(
        "unsupported_statement",
        "This SHOW statement is not one the guard can verify (SHOW ... WHERE and uncommon forms are refused); use SHOW ... LIKE or query information_schema.",
      );
    }
  }
  return refuseKnown(tokens) ?? parseError;
}
