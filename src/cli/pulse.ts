#!/usr/bin/env node
// `pulse <command>`: the operator's commands in one executable (package.json `bin`), so
// `npx pulse check 7 --json` prints only the report, without npm's banner.

const HELP = `Usage: pulse <command> [options]

Commands:
  serve                      Start the HTTP service (what \`npm start\` runs)
  migrate                    Apply pending migrations to the configured store, then exit;
                             exit 1 when that fails, 4 while a server holds the embedded store
  check <table_id> [--json]  Run one monitored table's checks now and print the outcomes
                             (with --json, errors too, as {"error", "detail"});
                             exit 1 when a check fails or errors, 2 for an unknown table,
                             3 while an instance runs checks of its connection, 4 while a
                             server holds the embedded store, 5 when it could not run at
                             all (settings, the store unreachable or not this Pulse's:
                             none there, migrations pending, a newer Pulse's)
  secrets rotate [--json]    Re-seal every stored password and channel URL under SECRETS_KEY,
                             opening them with it or SECRETS_KEY_PREVIOUS (README, Rotating
                             secrets), and print how many were re-sealed, already under it, and
                             which no key opens; exit 1 when some are not under it now, 4 while
                             a server holds the embedded store, 5 when it could not run at all,
                             130/143 when SIGINT/SIGTERM stopped it (after the batch it was on)
  help                       Show this text (also --help, -h)

Exit 2 also for an unknown command or a bad argument. Settings are read from the environment,
as the service reads them (see README, Configuration), never from arguments.
`;

const [command, ...args] = process.argv.slice(2);

/** serve and migrate take no arguments: one given is a setting misplaced (`--port 9`), which
 * must not be ignored while the command runs on the defaults. */
function noArguments(): number | null {
  if (args.length === 0) return null;
  process.stderr.write(`pulse ${command}: takes no arguments (got ${args.join(" ")}); settings come from the environment, e.g. PORT=9000 npx pulse ${command}\n`);
  return 2;
}

async function run(): Promise<number | undefined> {
  switch (command) {
    case "serve":
      if (args.length > 0) return noArguments()!;
      // Runs until a signal; main.ts exits by itself.
      await import("../main.js");
      return undefined;
    case "migrate":
      return noArguments() ?? (await import("./migrate.js")).migrate();
    case "check":
      return (await import("./check.js")).check(args);
    case "secrets":
      return (await import("./secrets.js")).secrets(args);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(HELP);
      return 0;
    default:
      process.stderr.write(`pulse: unknown command "${command}"\n\n${HELP}`);
      return 2;
  }
}

const code = await run();
if (code !== undefined) process.exit(code);
