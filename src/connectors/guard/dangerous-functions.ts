// Calls no parser flags but that sleep, lock, write, signal other sessions, touch server files
// or run SQL text behind the guard's back; one list per dialect, each group saying why.

import type { Dialect } from "../types.js";

/** Names match case-insensitively on the last part of a call (schema ignored, so user
 * functions shadowing these are refused too); a `*` stands for any run of characters. */
interface DangerGroup {
  why: string;
  names: readonly string[];
}

// Every name in pg_catalog of PostgreSQL 13 to 18, and every function of the contrib extensions
// of PostgreSQL 15, has a verdict in postgres-catalog-review.txt beside this file;
// tests/security/pg-catalog-review.test.ts fails on a name it has not seen.
// Left out on purpose as plain reads: current_setting, currval, lastval, *_if_assigned.
const POSTGRES: readonly DangerGroup[] = [
  {
    why: "it holds the connection idle for as long as asked, up to the statement timeout",
    names: ["pg_sleep*"],
  },
  {
    why: "it changes a server setting for the rest of the session (for example the read-only default or the timeout)",
    names: ["set_config"],
  },
  {
    why: "it opens a connection to another server and runs arbitrary SQL there, outside this read-only transaction",
    names: ["dblink*"],
  },
  {
    why: "it runs SQL text in a background worker, outside this read-only transaction (pg_background)",
    names: ["pg_background_*"],
  },
  {
    why: "large-object functions create, write, delete or export server-side objects and files",
    names: ["lo_*", "loread", "lowrite"],
  },
  {
    why: "it reads or lists files on the database server's file system",
    names: ["pg_read_file", "pg_read_file_old", "pg_read_binary_file", "pg_stat_file", "pg_ls_*", "pg_logdir_ls"],
  },
  {
    why: "it writes, renames or deletes files on the database server (adminpack)",
    names: ["pg_file_*"],
  },
  {
    why: "it signals other sessions or controls the server (reload, log rotation, WAL, backups, promotion)",
    names: [
      "pg_terminate_backend",
      "pg_cancel_backend",
      "pg_signal_backend",
      "pg_reload_conf",
      "pg_rotate_logfile",
      "pg_rotate_logfile_old",
      "pg_logfile_rotate",
      "pg_switch_wal",
      "pg_switch_xlog",
      "pg_create_restore_point",
      "pg_promote",
      "pg_backup_start",
      "pg_backup_stop",
      "pg_start_backup",
      "pg_stop_backup",
      "pg_wal_replay_*",
      "pg_xlog_replay_*",
      "pg_log_backend_memory_contexts",
      "pg_log_standby_snapshot",
      "pg_buffercache_evict*",
      "pg_import_system_collations",
      "pg_stop_making_pinned_objects",
      "binary_upgrade_*",
    ],
  },
  {
    why: "it summarizes, desummarizes or flushes an index, a write that a read-only transaction allows and no rollback undoes",
    names: ["brin_summarize_new_values", "brin_summarize_range", "brin_desummarize_range", "gin_clean_pending_list"],
  },
  {
    why: "it takes an OID from the server-wide counter, which no rollback gives back",
    names: ["pg_nextoid"],
  },
  {
    why: "it writes planner statistics, which PostgreSQL 18 allows in a read-only transaction (only the rollback undoes it), or extension bookkeeping meant for CREATE EXTENSION scripts",
    names: ["pg_clear_attribute_stats", "pg_clear_relation_stats", "pg_restore_attribute_stats", "pg_restore_relation_stats", "pg_extension_config_dump"],
  },
  {
    why: "it writes a snapshot file on the server for other sessions to import",
    names: ["pg_export_snapshot"],
  },
  {
    why: "it changes how later calls answer for the rest of the session (random()'s seed, pg_trgm's similarity threshold, isn's check-digit mode), on a connection that later requests share",
    names: ["setseed", "set_limit", "isn_weak"],
  },
  {
    why: "it rewrites table or visibility-map pages directly (pg_surgery, pg_visibility), bypassing the read-only transaction",
    names: ["heap_force_kill", "heap_force_freeze", "pg_truncate_visibility_map"],
  },
  {
    why: "it writes a file on the server, starts a background worker, or loads a whole relation into the server's caches, evicting what other sessions use (pg_prewarm)",
    names: ["pg_prewarm", "autoprewarm_*"],
  },
  {
    why: "it holds a lock that blocks writers to the table for as long as the check runs (amcheck)",
    names: ["bt_index_parent_check"],
  },
  {
    why: "it fetches the files or URLs an XSLT stylesheet names (xml2, with libxslt)",
    names: ["xslt_process"],
  },
  {
    why: "it resets statistics other people rely on",
    names: ["pg_stat_reset*", "pg_stat_statements_reset"],
  },
  {
    why: "advisory locks taken at session level outlive the transaction and can block other clients",
    names: ["pg_advisory_*", "pg_try_advisory_*"],
  },
  {
    why: "it sends a notification to other sessions",
    names: ["pg_notify"],
  },
  {
    why: "it advances or sets a sequence, a write that is never rolled back",
    names: ["nextval", "setval"],
  },
  {
    why: "it assigns a transaction id, which writes to the commit log even in a read-only transaction",
    names: ["txid_current", "pg_current_xact_id"],
  },
  {
    why: "it writes to the WAL or changes replication state (slots, origins, logical messages)",
    names: [
      "pg_logical_emit_message",
      "pg_logical_slot_get_*",
      "pg_logical_slot_peek_*",
      "pg_replication_origin_*",
      "pg_replication_slot_advance",
      "pg_create_*_replication_slot",
      "pg_copy_*_replication_slot",
      "pg_drop_replication_slot",
      "pg_sync_replication_slots",
    ],
  },
  {
    why: "it executes SQL given as text, which the guard cannot inspect",
    // ts_rewrite's three-tsquery form is pure, but the name is all the guard sees. crosstab and
    // connectby come with tablefunc, xpath_table (which runs a query built from its arguments,
    // and is marked stable) with xml2.
    names: ["query_to_xml*", "table_to_xml*", "cursor_to_xml*", "schema_to_xml*", "database_to_xml*", "ts_stat", "ts_rewrite", "crosstab*", "connectby", "xpath_table"],
  },
];

// Left out on purpose as plain reads: is_used_lock, is_free_lock, uuid_short, name_const.
const MYSQL: readonly DangerGroup[] = [
  {
    why: "it holds the connection busy for as long as asked",
    names: ["sleep", "benchmark"],
  },
  {
    why: "it reads a file from the database server's file system",
    names: ["load_file"],
  },
  {
    why: "named locks belong to the session, outlive the query and can block other clients",
    names: ["get_lock", "release_lock", "release_all_locks"],
  },
  {
    why: "it waits on replication for as long as asked",
    names: [
      "master_pos_wait",
      "source_pos_wait",
      "master_gtid_wait",
      "wait_for_executed_gtid_set",
      "wait_until_sql_thread_after_gtids",
    ],
  },
  {
    why: "it runs a shell command on the database server (lib_mysqludf_sys)",
    names: ["sys_exec", "sys_eval", "sys_get", "sys_set"],
  },
  {
    why: "with an argument it sets session state that later statements read",
    names: ["last_insert_id"],
  },
  {
    why: "it reads what the connection's previous statement left, which on Pulse's shared connections is not yours",
    names: ["found_rows", "row_count"],
  },
  {
    why: "it advances or sets a MariaDB sequence, a write",
    names: ["nextval", "setval"],
  },
];

const SQLITE: readonly DangerGroup[] = [
  {
    why: "it loads native code into the database process",
    names: ["load_extension"],
  },
  {
    why: "it reads or writes files, or starts an editor, on the server (fileio/shell functions)",
    names: ["readfile", "writefile", "edit", "fsdir", "zipfile", "zipfile_cds"],
  },
  {
    why: "with two arguments it registers a tokenizer from a raw pointer, a known memory-safety hole",
    names: ["fts3_tokenizer"],
  },
  {
    why: "it exposes raw database pages and can write them",
    names: ["sqlite_dbpage"],
  },
  {
    why: "it may run ANALYZE, which writes statistics tables",
    names: ["pragma_optimize"],
  },
];

/** Table-valued functions from the SQLite list, which also work named as a plain table
 * (`FROM pragma_optimize`). Matched on every identifier, so only names no column would have. */
const SQLITE_RELATIONS: ReadonlySet<string> = new Set(["sqlite_dbpage", "pragma_optimize", "zipfile", "fsdir"]);

export interface DangerousMatch {
  name: string;
  why: string;
}

interface Matcher {
  exact: Map<string, string>;
  patterns: { prefix: string; suffix: string; why: string }[];
}

function compile(groups: readonly DangerGroup[]): Matcher {
  const matcher: Matcher = { exact: new Map(), patterns: [] };
  for (const group of groups) {
    for (const name of group.names) {
      const star = name.indexOf("*");
      if (star < 0) matcher.exact.set(name, group.why);
      else matcher.patterns.push({ prefix: name.slice(0, star), suffix: name.slice(star + 1), why: group.why });
    }
  }
  return matcher;
}

const MATCHERS: Record<Dialect, Matcher> = {
  postgresql: compile(POSTGRES),
  mysql: compile(MYSQL),
  sqlite: compile(SQLITE),
};

/** Looks up a called function by its unqualified, unquoted name. */
export function findDangerousFunction(dialect: Dialect, name: string): DangerousMatch | undefined {
  const lower = name.toLowerCase();
  const matcher = MATCHERS[dialect];
  const exact = matcher.exact.get(lower);
  if (exact !== undefined) return { name: lower, why: exact };
  for (const { prefix, suffix, why } of matcher.patterns) {
    if (lower.length >= prefix.length + suffix.length && lower.startsWith(prefix) && lower.endsWith(suffix)) {
      return { name: lower, why };
    }
  }
  return undefined;
}

/** Looks up a name used as a table that is really a dangerous virtual table (SQLite only). */
export function findDangerousRelation(dialect: Dialect, name: string): DangerousMatch | undefined {
  if (dialect !== "sqlite") return undefined;
  const lower = name.toLowerCase();
  return SQLITE_RELATIONS.has(lower) ? findDangerousFunction(dialect, lower) : undefined;
}
