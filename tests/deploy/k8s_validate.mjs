// SPDX-License-Identifier: MIT
// Validates Kubernetes manifests offline against the API schemas that the npm
// packages kubernetes-models and @kubernetes-models/prometheus-operator carry
// (validators compiled from the Kubernetes OpenAPI and the operator's CRDs).
//
//   node k8s_validate.mjs NODE_MODULES FILE...
//
// Each YAML document is checked by the validator of its apiVersion and kind.
// Those schemas, like the API server's, accept fields they do not know; as
// `kubectl apply --validate=strict` does, this script also refuses them: the
// object is validated through a Proxy that records which fields the validator
// looked up on each object, and a field it never looked up (on an object it
// did not enumerate as a map) is unknown to the schema.
// Prints one line per problem, then "N documents, N problems"; exit 1 on any.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [modules, ...files] = process.argv.slice(2);
if (!modules || files.length === 0) {
  console.error('usage: node k8s_validate.mjs NODE_MODULES FILE...');
  process.exit(2);
}
const load = (spec) => import(pathToFileURL(path.join(modules, spec)).href);
const YAML = await load('yaml/dist/index.js');

// apiVersion -> module path prefix of its models.
function modelPath(apiVersion, kind) {
  if (!/^[A-Za-z0-9]+$/.test(kind || '')) return null;
  if (apiVersion === 'v1') return `kubernetes-models/v1/${kind}.js`;
  if (apiVersion === 'monitoring.coreos.com/v1')
    return `@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/${kind}.js`;
  if (/^[a-z0-9.]+\/v[0-9a-z]+$/.test(apiVersion || ''))
    return `kubernetes-models/${apiVersion}/${kind}.js`;
  return null;
}

// Wraps a plain object tree; returns [proxy, report()] where report lists the
// fields never read (paths) of objects whose keys were never enumerated.
function tracked(root) {
  const seen = new Map(); // target -> {path, read:Set, enumerated:bool}
  const proxies = new WeakMap();
  function wrap(target, p) {
    if (target === null || typeof target !== 'object') return target;
    if (proxies.has(target)) return proxies.get(target);
    const info = { path: p, read: new Set(), enumerated: false };
    seen.set(target, info);
    const proxy = new Proxy(target, {
      get(t, key, recv) {
        if (typeof key === 'string') info.read.add(key);
        const v = Reflect.get(t, key, recv);
        return typeof key === 'string' ? wrap(v, Array.isArray(t) ? `${p}[${key}]` : `${p}.${key}`) : v;
      },
      has(t, key) {
        if (typeof key === 'string') info.read.add(key);
        return Reflect.has(t, key);
      },
      ownKeys(t) {
        info.enumerated = true;
        return Reflect.ownKeys(t);
      },
      getOwnPropertyDescriptor(t, key) {
        if (typeof key === 'string') info.read.add(key);
        return Reflect.getOwnPropertyDescriptor(t, key);
      },
    });
    proxies.set(target, proxy);
    return proxy;
  }
  const proxy = wrap(root, '');
  function unknown() {
    const out = [];
    for (const [target, info] of seen) {
      if (Array.isArray(target) || info.enumerated) continue;
      for (const key of Object.keys(target))
        if (!info.read.has(key)) out.push(`${info.path}.${key}`.replace(/^\./, ''));
    }
    return out;
  }
  return [proxy, unknown];
}

let documents = 0;
const problems = [];
for (const file of files) {
  let docs;
  try {
    docs = YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    problems.push(`${file}: cannot read: ${e.message}`);
    continue;
  }
  for (const [i, doc] of docs.entries()) {
    const where = `${file}#${i + 1}`;
    if (doc.errors.length) {
      problems.push(`${where}: YAML: ${doc.errors[0].message}`);
      continue;
    }
    const obj = doc.toJS();
    if (obj === null) continue;
    documents++;
    const spec = modelPath(obj.apiVersion, obj.kind);
    if (!spec) {
      problems.push(`${where}: no schema for apiVersion ${obj.apiVersion} kind ${obj.kind}`);
      continue;
    }
    // The model's constructor copies the object (reading every field), so
    // the schema's validator that the model module imports is called directly.
    let validate, runValidateFunc;
    try {
      const file = path.join(modules, spec);
      const m = /from"(\.[^"]*_schemas\/[^"]+\.js)"/.exec(fs.readFileSync(file, 'utf8'));
      if (!m) throw new Error('no schema import');
      validate = (await import(pathToFileURL(path.resolve(path.dirname(file), m[1])).href)).validate;
      ({ runValidateFunc } = await load('@kubernetes-models/validate/dist/index.js'));
    } catch (e) {
      problems.push(`${where}: no schema for ${obj.apiVersion} ${obj.kind} (${e.message})`);
      continue;
    }
    const [proxy, unknown] = tracked(structuredClone(obj));
    try {
      runValidateFunc(validate, proxy);
    } catch (e) {
      problems.push(`${where} ${obj.kind}/${obj.metadata?.name}: ${e.message.split('\n')[0]}`);
    }
    for (const f of unknown())
      problems.push(`${where} ${obj.kind}/${obj.metadata?.name}: unknown field ${f}`);
  }
}
for (const p of problems) console.log(p);
console.log(`${documents} documents, ${problems.length} problems`);
process.exit(problems.length ? 1 : 0);
