// Validate one .glb with the Khronos glTF validator; print its JSON report on stdout.
import { readFileSync } from "node:fs";
import validator from "gltf-validator";

const path = process.argv[2];
const report = await validator.validateBytes(new Uint8Array(readFileSync(path)), {
  uri: path,
  maxIssues: 100,
});
process.stdout.write(JSON.stringify(report));
