// The codebook artifacts ArtifactService serves: the Lloyd–Max tables of
// core/codebook.h, by width or by the content hash a plan names them with.
//
// Domain logic only (no gRPC). The tables are constants of the build, the same
// on every machine, so nothing is stored: every width is served.
//
// Example:
//   v1::GetCodebookRequest request;
//   request.set_bits(3);
//   absl::StatusOr<v1::GetCodebookResponse> book = GetCodebook(request);
//   // book->centroids().size() == 4 * 8; Sha256Hex(book->centroids()) == book->content_hash()
#ifndef KVPLAN_SERVER_CODEBOOK_ARTIFACTS_H_
#define KVPLAN_SERVER_CODEBOOK_ARTIFACTS_H_

#include "absl/status/statusor.h"
#include "kvplan/v1/artifact_service.pb.h"

namespace kvplan::server {

// InvalidArgument for a width outside [kMinCodeBits, kMaxCodeBits] or a request
// without a selector; NotFound for a hash that names no codebook of this build.
// Thread-safe.
absl::StatusOr<v1::GetCodebookResponse> GetCodebook(const v1::GetCodebookRequest& request);

}  // namespace kvplan::server

#endif  // KVPLAN_SERVER_CODEBOOK_ARTIFACTS_H_
