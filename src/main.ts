#!/usr/bin/env node
// For its effect on glibc's malloc, before anything else allocates (see the module).
import './malloc-thresholds.js';
import { packageVersion, readStdin, runCli } from './cli.js';

const code = await runCli(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  stdin: readStdin,
  version: packageVersion(),
});
// The only exit in junction: a stopped gateway may still hold timers of finished sessions.
process.exit(code);
