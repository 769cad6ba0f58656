#!/usr/bin/env node
// `npx sage-sync`: runs the TypeScript CLI (src/cli/main.ts) through tsx, so no build step is needed in a checkout.
import { register } from 'tsx/esm/api';

register();
const { runCli } = await import('../src/cli/main.ts');
process.exit(await runCli(process.argv.slice(2)));
