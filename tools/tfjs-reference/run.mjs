// Run a TF.js graph model with the pure-JS CPU backend and write its outputs.
//
// usage: node run.mjs MODEL_JSON INPUT_BIN SHAPE OUT_DIR OUTPUT_NAME...
//   MODEL_JSON   model.json of a TF.js graph model (weight shards beside it)
//   INPUT_BIN    raw little-endian float32 input tensor
//   SHAPE        its shape, comma separated, e.g. 1,3,416,416
//   OUT_DIR      receives <i>.bin (raw float32) per output and outputs.json
//   OUTPUT_NAME  graph tensors to fetch, e.g. Identity or tower_0/detections
//
// The CPU backend is the reference: no native bindings (tfjs-node) are used,
// so this runs wherever node does.
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { loadGraphModel } from '@tensorflow/tfjs-converter';

function fileHandler(modelJson) {
  // An IOHandler reading model.json and its shards from disk (tfjs-core has none for node).
  return {
    load: async () => {
      const spec = JSON.parse(fs.readFileSync(modelJson, 'utf8'));
      const dir = path.dirname(modelJson);
      const weightSpecs = [];
      const buffers = [];
      for (const group of spec.weightsManifest) {
        weightSpecs.push(...group.weights);
        for (const p of group.paths) buffers.push(fs.readFileSync(path.join(dir, p)));
      }
      const all = Buffer.concat(buffers);
      const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
      return {
        modelTopology: spec.modelTopology,
        format: spec.format,
        generatedBy: spec.generatedBy,
        convertedBy: spec.convertedBy,
        signature: spec.signature,
        userDefinedMetadata: spec.userDefinedMetadata,
        weightSpecs,
        weightData,
      };
    },
  };
}

async function main() {
  const [modelJson, inputBin, shapeArg, outDir, ...outputNames] = process.argv.slice(2);
  if (!outputNames.length) {
    console.error('usage: node run.mjs MODEL_JSON INPUT_BIN SHAPE OUT_DIR OUTPUT_NAME...');
    process.exit(2);
  }
  await tf.setBackend('cpu');
  await tf.ready();
  const model = await loadGraphModel(fileHandler(modelJson));
  const shape = shapeArg.split(',').map(Number);
  const raw = fs.readFileSync(inputBin);
  const data = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const input = tf.tensor(data, shape, 'float32');
  const started = Date.now();
  let outputs = await model.executeAsync(input, outputNames);
  if (!Array.isArray(outputs)) outputs = [outputs];
  const ms = Date.now() - started;
  fs.mkdirSync(outDir, { recursive: true });
  const meta = { backend: tf.getBackend(), tfjs: tf.version_core, ms, outputs: [] };
  for (const [i, t] of outputs.entries()) {
    const values = await t.data();
    fs.writeFileSync(path.join(outDir, `${i}.bin`), Buffer.from(new Float32Array(values).buffer));
    meta.outputs.push({ name: outputNames[i], shape: t.shape, dtype: t.dtype, file: `${i}.bin` });
  }
  fs.writeFileSync(path.join(outDir, 'outputs.json'), JSON.stringify(meta, null, 2));
  console.log(`${path.basename(modelJson)}: ${outputs.length} output(s) in ${ms} ms (${meta.backend})`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
