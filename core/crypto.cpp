#include "core/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <sys/random.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <memory>
#include <stdexcept>
#include <vector>

namespace relais {
std::string to_hex(const unsigned char* data, size_t len) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (size_t i = 0; i < len; ++i) {
    out += hex[data[i] >> 4];
    out += hex[data[i] & 15];
  }
  return out;
}

std::string normalize_fingerprint(const std::string& text) {
  std::string out;
  out.reserve(64);
  for (char c : text) {
    if (c == ':' || c == ' ') continue;
    if (!std::isxdigit(static_cast<unsigned char>(c))) return "";
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out.size() == 64 ? out : "";
}

namespace {

// The algorithms, fetched once from OpenSSL's default library context and kept for the process.
// OpenSSL 3.0 looks EVP_sha256() / EVP_aes_256_gcm() up again in its global method store on
// every context initialisation, under a write lock all threads share: on the accept path (a
// digest and a seal per message, on every HTTP thread) that lock was a measured bottleneck
// (docs/performance.md, "The accept path, session 9"). Fallback: the legacy objects.
const EVP_MD* sha256_md() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA2-256", nullptr);
  return md != nullptr ? md : EVP_sha256();
}

const EVP_CIPHER* aes256gcm_cipher() {
  static EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return cipher != nullptr ? cipher : EVP_aes_256_gcm();
}

// Random bytes from the kernel (getrandom, the same source OpenSSL seeds from). OpenSSL 3.0's
// RAND_bytes takes a process-wide write lock on every call (RAND_get_rand_method), and its
// per-thread generators lock their shared parent on every call too: with a nonce per sealed
// value on every HTTP thread and every delivery worker, the threads queued on those locks
// (docs/performance.md, "The accept path, session 9"). RAND_bytes stays the fallback.
bool fill_random(unsigned char* out, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::getrandom(out + got, n - got, 0);
    if (r > 0) {
      got += static_cast<size_t>(r);
    } else if (r < 0 && errno == EINTR) {
      continue;
    } else {
      return RAND_bytes(out, static_cast<int>(n)) == 1;
    }
  }
  return true;
}

std::string pbkdf2_hex(const std::string& password, const std::string& salt, int iterations) {
  unsigned char out[32];
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()),
                        static_cast<int>(salt.size()), iterations, sha256_md(), sizeof out,
                        out) != 1) {
    throw std::runtime_error("PBKDF2 failed");
  }
  return to_hex(out, sizeof out);
}

// One cipher context per thread, reused: allocating one per record would cost more than the
// encryption of a small payload. Freed when the thread ends.
EVP_CIPHER_CTX* thread_cipher_context() {
  struct Free {
    void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
  };
  thread_local std::unique_ptr<EVP_CIPHER_CTX, Free> ctx(EVP_CIPHER_CTX_new());
  return ctx.get();
}

// The cipher to initialise the thread's context with: none when it already holds AES-256-GCM
// (only the key and the nonce are set again, the provider's context is kept).
const EVP_CIPHER* gcm_for(EVP_CIPHER_CTX* ctx) {
  const EVP_CIPHER* gcm = aes256gcm_cipher();
  return EVP_CIPHER_CTX_get0_cipher(ctx) == gcm ? nullptr : gcm;
}

constexpr int kNonce = 12;
constexpr int kTag = 16;

const unsigned char* bytes(std::string_view s) {
  static const unsigned char kEmpty = 0;  // OpenSSL wants a non-null pointer, even for 0 bytes
  return s.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(s.data());
}

}  // namespace

std::string base64_encode(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes(data),
                          static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(std::max(n, 0)));
  return out;
}

bool base64_decode(std::string_view text, std::string& out) {
  out.clear();
  if (text.size() % 4 != 0) return false;
  if (text.empty()) return true;
  // EVP_DecodeBlock skips blanks and does not refuse everything: check the alphabet first.
  size_t pad = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '+' || c == '/';
    if (c == '=' && i + 2 >= text.size()) {
      ++pad;
    } else if (!alpha || pad > 0) {
      return false;
    }
  }
  out.resize(text.size() / 4 * 3);
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes(text),
                          static_cast<int>(text.size()));
  if (n < 0) {
    out.clear();
    return false;
  }
  out.resize(static_cast<size_t>(n) - pad);  // EVP_DecodeBlock counts the padding as zeros
  return true;
}

bool aes256gcm_seal(const unsigned char* key, std::string_view aad, std::string_view plain,
                    std::string& sealed) {
  sealed.assign(plain.size() + kNonce + kTag, '\0');
  auto* out = reinterpret_cast<unsigned char*>(sealed.data());
  EVP_CIPHER_CTX* ctx = thread_cipher_context();
  int len = 0, fin = 0;
  bool ok = ctx != nullptr && fill_random(out, kNonce) &&
            EVP_EncryptInit_ex(ctx, gcm_for(ctx), nullptr, key, out) == 1 &&
            EVP_EncryptUpdate(ctx, nullptr, &len, bytes(aad), static_cast<int>(aad.size())) == 1 &&
            EVP_EncryptUpdate(ctx, out + kNonce, &len, bytes(plain),
                              static_cast<int>(plain.size())) == 1 &&
            EVP_EncryptFinal_ex(ctx, out + kNonce + len, &fin) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, kTag, out + kNonce + plain.size()) == 1;
  if (!ok) sealed.clear();
  return ok;
}

bool aes256gcm_open(const unsigned char* key, std::string_view aad, std::string_view sealed,
                    std::string& plain) {
  plain.clear();
  if (sealed.size() < static_cast<size_t>(kNonce + kTag)) return false;
  const auto* in = bytes(sealed);
  const size_t n = sealed.size() - kNonce - kTag;
  plain.assign(n, '\0');
  auto* out = reinterpret_cast<unsigned char*>(plain.data());
  EVP_CIPHER_CTX* ctx = thread_cipher_context();
  unsigned char tag[kTag];
  std::copy(in + kNonce + n, in + kNonce + n + kTag, tag);
  int len = 0, fin = 0;
  bool ok = ctx != nullptr && EVP_DecryptInit_ex(ctx, gcm_for(ctx), nullptr, key, in) == 1 &&
            EVP_DecryptUpdate(ctx, nullptr, &len, bytes(aad), static_cast<int>(aad.size())) == 1 &&
            EVP_DecryptUpdate(ctx, out, &len, in + kNonce, static_cast<int>(n)) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, kTag, tag) == 1 &&
            EVP_DecryptFinal_ex(ctx, out + len, &fin) == 1;
  if (!ok) {
    OPENSSL_cleanse(plain.data(), plain.size());
    plain.clear();
  }
  return ok;
}

std::string sha256_hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, sha256_md(), nullptr);
  return to_hex(md, len);
}

std::string hmac_sha256_hex(const std::string& key, const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // An empty key is a valid HMAC key; OpenSSL wants a non-null pointer for it.
  static const unsigned char kEmpty = 0;
  const void* k = key.empty() ? static_cast<const void*>(&kEmpty) : key.data();
  if (HMAC(sha256_md(), k, static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len) == nullptr) {
    return "";  // never matches a signature (only on allocation failure)
  }
  return to_hex(md, len);
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr ||
      EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), sha256_md(), nullptr) != 1) {
    EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_));
    throw std::runtime_error("SHA-256: OpenSSL context unavailable");
  }
}

Sha256::~Sha256() {
  EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_));
}

void Sha256::update(std::string_view data) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data.data(), data.size());
}

std::string Sha256::hex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), md, &len);
  return to_hex(md, len);
}

bool constant_time_equals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string random_hex(size_t bytes) {
  std::vector<unsigned char> buf(bytes);
  if (!fill_random(buf.data(), bytes)) {
    throw std::runtime_error("the random generator failed");
  }
  return to_hex(buf.data(), bytes);
}

std::string hash_password(const std::string& password, int iterations) {
  if (iterations < kPasswordIterations) iterations = kPasswordIterations;
  std::string salt = random_hex(16);
  return "pbkdf2-sha256$" + std::to_string(iterations) + "$" + salt + "$" +
         pbkdf2_hex(password, salt, iterations);
}

bool verify_password(const std::string& password, const std::string& encoded) {
  // pbkdf2-sha256$N$SALT$HASH
  const std::string prefix = "pbkdf2-sha256$";
  if (encoded.compare(0, prefix.size(), prefix) != 0) return false;
  size_t a = prefix.size();
  size_t b = encoded.find('$', a);
  if (b == std::string::npos) return false;
  size_t c = encoded.find('$', b + 1);
  if (c == std::string::npos) return false;
  int iterations = 0;
  try {
    iterations = std::stoi(encoded.substr(a, b - a));
  } catch (const std::exception&) {
    return false;
  }
  if (iterations < 1 || iterations > 100000000) return false;
  std::string salt = encoded.substr(b + 1, c - b - 1);
  std::string expected = encoded.substr(c + 1);
  return constant_time_equals(pbkdf2_hex(password, salt, iterations), expected);
}

}  // namespace relais
