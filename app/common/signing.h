// Ed25519 signatures over validation reports (OpenSSL EVP_PKEY_ED25519).
//
// The console has one signing key, a PKCS#8 PEM file in its config directory
// (DefaultSigningKeyPath(), mode 0600), created on first use. A key is named by its key id:
// sha256 of the raw 32-byte public key, hex. Customers configure the public key (PEM) on their
// agents; a signed report is the report's canonical JSON, the signature over exactly those bytes
// and the key id.
//
// Thread-safety: SigningKey and VerifyingKey are immutable after construction and may be used
// from several threads at once.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/common/validation_report.h"
#include "engine/base/status.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace sextant::report {

class VerifyingKey {
 public:
  // From the raw 32-byte public key, or a PEM "PUBLIC KEY" block.
  static Result<VerifyingKey> FromRaw(const std::vector<uint8_t>& raw);
  static Result<VerifyingKey> FromPem(std::string_view pem);
  static Result<VerifyingKey> LoadPem(const std::filesystem::path& file);

  const std::vector<uint8_t>& raw() const { return raw_; }
  const std::string& key_id() const { return key_id_; }
  std::string Pem() const;

  // OK when signature_hex is a valid Ed25519 signature of message under this key;
  // UNAUTHENTICATED otherwise (a malformed signature too).
  Status Verify(std::string_view message, std::string_view signature_hex) const;

 private:
  std::shared_ptr<EVP_PKEY> pkey_;
  std::vector<uint8_t> raw_;
  std::string key_id_;
};

class SigningKey {
 public:
  static Result<SigningKey> Generate();
  // Reads a PKCS#8 PEM Ed25519 private key. Refuses a file readable by group or others.
  static Result<SigningKey> Load(const std::filesystem::path& file);
  // Loads file, or generates a key and writes it there (mode 0600, parent dir 0700) when it does
  // not exist yet.
  static Result<SigningKey> LoadOrCreate(const std::filesystem::path& file);

  // Writes the private key as PEM, mode 0600; ALREADY_EXISTS when the file exists.
  Status Save(const std::filesystem::path& file) const;

  const VerifyingKey& public_key() const { return public_; }
  const std::string& key_id() const { return public_.key_id(); }

  // 128 hex digits.
  Result<std::string> Sign(std::string_view message) const;

 private:
  std::shared_ptr<EVP_PKEY> pkey_;
  VerifyingKey public_;
};

// <console config dir>/report-signing-key.pem
Result<std::filesystem::path> DefaultSigningKeyPath();

struct SignedReport {
  std::string report_json;  // ValidationReport canonical JSON: exactly the signed bytes
  std::string signature;    // Ed25519, hex
  std::string key_id;       // sha256 of the signer's raw public key, hex
};

Result<SignedReport> SignReport(const ValidationReport& report, const SigningKey& key);

// Checks that the key id is this key's, the signature is valid over report_json, and
// report_json is a canonical, well-formed report; returns the report. UNAUTHENTICATED for a
// bad signature or another key, DATA_LOSS for a report that is not in canonical form.
Result<ValidationReport> VerifySignedReport(const SignedReport& signed_report,
                                            const VerifyingKey& key);

// {"report": {...}, "signature": "...", "keyId": "..."}: the form scripts and agents receive.
nlohmann::json SignedReportToJson(const SignedReport& signed_report);
// The report object is re-serialized canonically; verification then checks the signature.
Result<SignedReport> SignedReportFromJson(const nlohmann::json& json);

}  // namespace sextant::report
