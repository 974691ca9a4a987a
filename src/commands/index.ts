// Every command family, in the order COMMAND lists them. Each family file
// exports `commands: CommandSpec[]`; to add a family, import it here and add
// it to `families`.
import type { CommandSpec } from './types';
import { commands as connection } from './connection';
import { commands as string } from './string';
import { commands as keys } from './keys';
import { commands as expire } from './expire';
import { commands as server } from './server';
import { commands as client } from './client';
import { commands as introspection } from './introspection';
import { commands as persistence } from './persistence';

const families: ReadonlyArray<readonly CommandSpec[]> = [
  connection,
  string,
  keys,
  expire,
  server,
  client,
  introspection,
  persistence,
];

/** All top-level command declarations. */
export function allCommandSpecs(): CommandSpec[] {
  return families.flat();
}
