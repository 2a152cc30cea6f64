import { readFileSync, statSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';

/**
 * A credential kept out of the configuration file: `password_env: NAME` (an environment
 * variable) or `password_file: PATH` (a file relative to the configuration, its first line).
 * A file any user of the machine can read is refused, as ssh refuses such a private key: the
 * secret would not be one.
 */
export interface SecretSource {
  readonly password_env?: string | undefined;
  readonly password_file?: string | undefined;
}

/** The secret, or the reason it cannot be had (for a FILE:LINE:COL problem). */
export type SecretResult = { readonly value: string } | { readonly problem: string };

export function readSecret(source: SecretSource, baseDir: string): SecretResult {
  if (source.password_env !== undefined) {
    const value = process.env[source.password_env];
    if (value === undefined || value === '') {
      return { problem: `environment variable ${source.password_env} is not set` };
    }
    return { value };
  }
  if (source.password_file !== undefined) return readSecretFile(source.password_file, baseDir);
  return { problem: 'no secret source' };
}

function readSecretFile(file: string, baseDir: string): SecretResult {
  const path = resolvePath(baseDir, file);
  let text: string;
  try {
    const { mode } = statSync(path);
    if ((mode & 0o004) !== 0) {
      return {
        problem: `${path} is readable by every user of this machine (chmod o-r, e.g. 600 or 640)`,
      };
    }
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return {
      problem: `cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : (code ?? 'failed')}`,
    };
  }
  // The first line: editors and `echo` end files with a newline that is not part of the secret.
  const value = text.split(/\r?\n/, 1)[0] ?? '';
  if (value === '') return { problem: `${path} is empty` };
  return { value };
}
