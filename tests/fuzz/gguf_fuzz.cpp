// The GGUF reader on any bytes, then the tokenizer built from what it read: either an error
// naming what is wrong, or a file whose every tensor lies inside it.
#include <cstdint>
#include <string>

#include "engine/gguf/gguf.h"
#include "engine/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = sextant::gguf::GgufFile::FromBytes(data, size);
  if (!file.ok()) {
    SEXTANT_FUZZ_CHECK(!file.status().message().empty());
    return 0;
  }
  for (const auto& t : (*file)->tensors()) {
    SEXTANT_FUZZ_CHECK(t.data >= data && t.size_bytes <= size &&
                       static_cast<size_t>(t.data - data) <= size - t.size_bytes);
    SEXTANT_FUZZ_CHECK(t.elements() >= 0);
  }
  (void)(*file)->GetString("tokenizer.chat_template");
  auto tok = sextant::Tokenizer::FromGguf(**file);
  if (tok.ok()) {
    const std::string text = "Once upon a time <s> \xe2\x96\x81 \xff";
    const auto ids = (*tok)->Encode(text, true);
    for (int32_t id : ids) SEXTANT_FUZZ_CHECK(id >= 0 && id < (*tok)->vocab_size());
    (void)(*tok)->Decode(ids);
    (void)(*tok)->EncodeAtMost(text, true, 4);
  }
  return 0;
}
