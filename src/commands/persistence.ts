// The persistence group. SHUTDOWN lives here with SAVE/BGSAVE's future
// neighbours: snapshots of the pool arrive with the snapshot issue, so until
// then SHUTDOWN SAVE fails the way Redis fails when its save fails.
import type { CommandContext, CommandSpec } from './types';

function shutdown(ctx: CommandContext, argv: Buffer[]): void {
  let save = false;
  let nosave = false;
  let abort = false;
  for (let i = 1; i < argv.length; i++) {
    const option = argv[i]!.toString('latin1').toLowerCase();
    if (option === 'nosave') nosave = true;
    else if (option === 'save') save = true;
    else if (option === 'now' || option === 'force') continue; // no shutdown delay to skip, no save to force past
    else if (option === 'abort') abort = true;
    else {
      ctx.reply.error('ERR syntax error');
      return;
    }
  }
  if ((abort && argv.length !== 2) || (save && nosave)) {
    ctx.reply.error('ERR syntax error');
    return;
  }
  if (abort) {
    ctx.reply.error('ERR No shutdown in progress.');
    return;
  }
  if (save) {
    ctx.server.log.warning('Error trying to save the DB: snapshots are not available in this build, can\'t exit.');
    ctx.server.log.warning('Errors trying to shut down the server. Check the logs for more information.');
    ctx.reply.error('ERR Errors trying to SHUTDOWN. Check logs.');
    return;
  }
  ctx.server.log.warning('User requested shutdown...');
  // Let this command's batch finish; the connection closes with the server.
  setImmediate(() => ctx.server.shutdown('Shutting down on SHUTDOWN', 0));
}

export const commands: CommandSpec[] = [
  {
    name: 'shutdown', arity: -1,
    flags: ['admin', 'noscript', 'loading', 'stale', 'no_multi', 'allow_busy'],
    firstKey: 0, lastKey: 0, step: 0, acl: ['admin', 'slow', 'dangerous'],
    group: 'server', since: '1.0.0', summary: 'Synchronously save the dataset to disk and then shut down the server',
    complexity: 'O(N) when saving, where N is the total number of keys in all databases when saving data, otherwise O(1)',
    handler: shutdown,
  },
];
