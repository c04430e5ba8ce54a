// Bun (and Node ESM): `bun cli.js '<json input>'`.
import { program } from "./program.js";

console.log(JSON.stringify(program(JSON.parse(process.argv[2]))));
