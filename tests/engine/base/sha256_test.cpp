// The one SHA-256: FIPS 180-4's example vectors and any split of the input into updates, for both
// implementations (OpenSSL's where the build has it, the portable one always), hex helpers, and
// agreement with the digest GgufFile::Sha256 reports.
#include "engine/base/sha256.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "engine/gguf/gguf.h"
#include "engine/gguf/synth.h"

namespace sextant {
namespace {

std::string Hex(const std::string& s) {
  return Sha256Hex({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
}

TEST(Sha256Test, FipsExampleVectors) {
  EXPECT_EQ(Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

std::string PortableHex(const std::string& s) {
  Sha256 h(Sha256::Implementation::kPortable);
  h.Update(s.data(), s.size());
  return DigestHex(h.Final());
}

TEST(Sha256Test, ThePortableCodeGivesTheSameDigestsAsTheBest) {
  for (const std::string& s :
       {std::string(), std::string("abc"), std::string(55, 'x'), std::string(56, 'y'),
        std::string(64, 'z'), std::string(1000, 'q'), std::string(1000000, 'a')}) {
    EXPECT_EQ(PortableHex(s), Hex(s)) << s.size() << " bytes";
  }
  EXPECT_EQ(PortableHex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256Test, HexHelpersRoundTripAndRejectBadDigits) {
  const std::vector<uint8_t> bytes = {0x00, 0x7f, 0xab, 0xff};
  EXPECT_EQ(ToHex(bytes), "007fabff");
  EXPECT_EQ(*FromHex("007FABff"), bytes);
  EXPECT_EQ(FromHex("abc").status().code(), StatusCode::kInvalidArgument);
  auto bad = FromHex("00zz");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("offset 2"), std::string::npos) << bad.status().message();
  EXPECT_TRUE(IsLowerHexDigest(Hex("x")));
  EXPECT_FALSE(IsLowerHexDigest("ABC"));
  EXPECT_EQ(Sha256Hex(std::string_view("abc")), Hex("abc"));
  const int32_t ids[] = {1, -2};
  const uint8_t le[] = {1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff};
  EXPECT_EQ(TokenIdsDigest(ids), Sha256Digest(le));
}

TEST(Sha256Test, AnySplitIntoUpdatesGivesTheSameDigest) {
  std::vector<uint8_t> data(1000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 131 + 7);
  const std::string whole = Sha256Hex(data);
  for (auto impl : {Sha256::Implementation::kBest, Sha256::Implementation::kPortable}) {
    for (size_t step : {1u, 3u, 55u, 56u, 63u, 64u, 65u, 127u, 999u}) {
      Sha256 s(impl);
      for (size_t off = 0; off < data.size(); off += step)
        s.Update(data.data() + off, std::min(step, data.size() - off));
      EXPECT_EQ(DigestHex(s.Final()), whole) << "updates of " << step << " bytes";
    }
  }
}

TEST(Sha256Test, AgreesWithTheModelFileDigest) {
  const std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("sextant_sha_" + std::to_string(::getpid()));
  ASSERT_TRUE(gguf::SynthesizeLlama(*gguf::LlamaShapeByName("stories260k-like"),
                                    gguf::SynthType::kQ8_0, 5, path)
                  .ok());
  std::ifstream in(path, std::ios::binary);
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
  auto file = gguf::GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  auto digest = (*file)->Sha256();
  ASSERT_TRUE(digest.ok()) << digest.status().ToString();
  EXPECT_EQ(*digest, Sha256Hex(bytes));
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace sextant
