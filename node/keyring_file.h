// The keyring file (--keyring_file): one base64 key per line, the primary first
// (wire::Keyring::Parse). It holds secrets, so it must not be readable by group or others:
// loading refuses such a file (as ssh does with private keys), and every write goes to a
// fresh 0600 temporary file in the same directory, fsynced, then renamed over the old one,
// so a crash leaves the old keyring or the new one, never half of either.
#ifndef SCUTTLE_NODE_KEYRING_FILE_H_
#define SCUTTLE_NODE_KEYRING_FILE_H_

#include <string>

#include "absl/status/statusor.h"
#include "wire/seal.h"

namespace scuttle {

// NotFound when the file is missing; PermissionDenied when its mode allows group/others
// any access; InvalidArgument (naming the line) for a bad key.
absl::StatusOr<wire::Keyring> LoadKeyringFile(const std::string& path);
absl::Status WriteKeyringFile(const std::string& path, const wire::Keyring& ring);

// A secret from a file (the admin token): its content without surrounding whitespace.
// Same permission rule as the keyring; an empty secret is InvalidArgument.
absl::StatusOr<std::string> LoadSecretFile(const std::string& path);

}  // namespace scuttle

#endif  // SCUTTLE_NODE_KEYRING_FILE_H_
