#!/usr/bin/env bash
# Writes the binary seeds of tests/fuzz/corpus (the text seeds are kept as they are): small GGUF
# files (a llama and a gpt2 vocabulary, one tensor each) and the agent's gRPC requests encoded
# by protoc. Run from anywhere; needs python3 and protoc.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/tests/fuzz/corpus"
mkdir -p "$out/gguf" "$out/agent_proto"

python3 - "$out/gguf" <<'PY'
import struct, sys, os
out = sys.argv[1]
def s(x):
    b = x.encode()
    return struct.pack('<Q', len(b)) + b
def kv_str(k, v): return s(k) + struct.pack('<I', 8) + s(v)
def kv_u32(k, v): return s(k) + struct.pack('<I', 4) + struct.pack('<I', v)
def kv_arr_str(k, vals):
    return s(k) + struct.pack('<I', 9) + struct.pack('<I', 8) + struct.pack('<Q', len(vals)) + b''.join(s(v) for v in vals)
def kv_arr_f32(k, vals):
    return s(k) + struct.pack('<I', 9) + struct.pack('<I', 6) + struct.pack('<Q', len(vals)) + b''.join(struct.pack('<f', v) for v in vals)
def kv_arr_i32(k, vals):
    return s(k) + struct.pack('<I', 9) + struct.pack('<I', 5) + struct.pack('<Q', len(vals)) + b''.join(struct.pack('<i', v) for v in vals)
def gguf(kvs, name='token_embd.weight', dims=(4, 4)):
    head = b'GGUF' + struct.pack('<I', 3) + struct.pack('<Q', 1) + struct.pack('<Q', len(kvs))
    body = b''.join(kvs)
    info = s(name) + struct.pack('<I', len(dims)) + b''.join(struct.pack('<Q', d) for d in dims)
    info += struct.pack('<I', 0) + struct.pack('<Q', 0)  # F32, offset 0
    data = head + body + info
    data += b'\0' * ((32 - len(data) % 32) % 32)
    n = 1
    for d in dims: n *= d
    data += b''.join(struct.pack('<f', i * 0.25) for i in range(n))
    return data
llama_tokens = ['<unk>', '<s>', '</s>'] + ['<0x%02X>' % b for b in range(256)] + ['\u2581', 'a', 'b', 'ab', '\u2581a', 'Once', '\u2581upon']
types = [2, 3, 3] + [6] * 256 + [1] * 7
llama = gguf([kv_str('general.architecture', 'llama'), kv_str('tokenizer.ggml.model', 'llama'),
              kv_arr_str('tokenizer.ggml.tokens', llama_tokens),
              kv_arr_f32('tokenizer.ggml.scores', [0.0] * 259 + [-1.0, -2, -2, -3, -1, -4, -5]),
              kv_arr_i32('tokenizer.ggml.token_type', types),
              kv_u32('tokenizer.ggml.bos_token_id', 1), kv_u32('tokenizer.ggml.eos_token_id', 2),
              kv_str('tokenizer.chat_template', '{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}')])
open(os.path.join(out, 'llama-vocab.gguf'), 'wb').write(llama)
def byte_char(b):
    printable = (0x21 <= b <= 0x7e) or (0xa1 <= b <= 0xac) or b >= 0xae
    return b
cps = []
n = 256
for b in range(256):
    printable = (0x21 <= b <= 0x7e) or (0xa1 <= b <= 0xac) or b >= 0xae
    if printable: cps.append(chr(b))
    else:
        cps.append(chr(n)); n += 1
gpt2 = gguf([kv_str('general.architecture', 'llama'), kv_str('tokenizer.ggml.model', 'gpt2'),
             kv_arr_str('tokenizer.ggml.tokens', cps + ['ab', '\u0120a', '<|endoftext|>']),
             kv_arr_str('tokenizer.ggml.merges', ['a b', '\u0120 a']),
             kv_u32('tokenizer.ggml.eos_token_id', 258)], dims=(8,))
open(os.path.join(out, 'gpt2-vocab.gguf'), 'wb').write(gpt2)
open(os.path.join(out, 'header-only.gguf'), 'wb').write(b'GGUF' + struct.pack('<IQQ', 3, 0, 0))
PY

proto="$root/connectors/proto"
encode() {  # MESSAGE SELECTOR-BYTE FILE TEXT
  { printf "\\x$2"; printf '%s' "$4" | protoc -I"$proto" --encode="sextant.v1.$1" \
      "$proto/sextant/v1/agent.proto"; } > "$out/agent_proto/$3"
}
encode ApplyDeploymentRequest 00 apply.bin 'spec { name: "tiny" spec_json: "{\"name\":\"tiny\"}" spec_digest: "sha256:0d1e" model_uri: "stories260K.gguf" model_sha256: "abcd" } if_generation: 3'
encode ApplyDeploymentRequest 00 apply-report.bin 'spec { name: "tiny" spec_json: "{}" } signed_report_json: "{\"report\":{\"specDigest\":\"x\"},\"signature\":\"00\",\"keyId\":\"ab\"}"'
encode DeleteDeploymentRequest 01 delete.bin 'name: "tiny" if_generation: 2'
encode RunValidationRequest 02 validate.bin 'name: "tiny"'
encode ListAuditLogRequest 03 audit.bin 'after_seq: 5 page_size: 10 rpc: "ApplyDeployment"'
encode WatchMetricsRequest 04 metrics.bin 'interval_ms: 1000'
encode GetDeploymentRequest 05 get.bin 'name: "tiny"'
echo "seeds written to $out"
