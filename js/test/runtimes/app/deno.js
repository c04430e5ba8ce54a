// Deno 2, run with no permission flags: `deno run deno.js '<json input>'`.
import { program } from "./program.js";

console.log(JSON.stringify(program(JSON.parse(Deno.args[0]))));
