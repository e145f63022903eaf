// kvplan --coordinator ADDR artifacts codebook (--bits B | --hash H) [--json].
#include <bit>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "client/cli/command_util.h"
#include "client/cli/coordinator_connection.h"
#include "client/cli/flags.h"
#include "core/byte_io.h"
#include "core/digest.h"
#include "kvplan/v1/artifact_service.grpc.pb.h"
#include "nlohmann/json.hpp"

namespace kvplan::cli {
namespace {

// The centroids of a GetCodebook reply, after checking that they are what
// their hash says: a serving node must never decode with unverified tables.
absl::StatusOr<std::vector<float>> VerifiedCentroids(const v1::GetCodebookResponse& book) {
  const std::string& bytes = book.centroids();
  if (book.bits() < 1 || book.bits() > 8 || bytes.size() != (size_t{4} << book.bits())) {
    return absl::DataLossError(
        absl::StrFormat("the coordinator sent %d bytes for a %d-bit codebook; want 4 * 2^bits",
                        bytes.size(), book.bits()));
  }
  if (const std::string hash = Sha256Hex(bytes); hash != book.content_hash()) {
    return absl::DataLossError(absl::StrFormat(
        "codebook bytes hash to %s but the coordinator names them %s", hash, book.content_hash()));
  }
  std::vector<float> centroids;
  ByteReader in(bytes);
  for (uint64_t word = 0; in.LittleEndian(4, &word);) {
    centroids.push_back(std::bit_cast<float>(static_cast<uint32_t>(word)));
  }
  return centroids;
}

absl::Status Codebook(const CoordinatorConnection& c, const std::vector<std::string>& args,
                      std::ostream& out) {
  absl::StatusOr<Flags> flags =
      Flags::Parse(args, {.values = {"bits", "hash"}, .switches = {"json"}});
  if (!flags.ok()) return flags.status();
  if (flags->Has("bits") == flags->Has("hash")) {
    return absl::InvalidArgumentError("codebook: give --bits B or --hash H (one of them)");
  }
  v1::GetCodebookRequest request;
  if (flags->Has("bits")) {
    absl::StatusOr<int64_t> bits = flags->Int("bits", 0);
    if (!bits.ok()) return bits.status();
    request.set_bits(static_cast<int32_t>(*bits));
  } else {
    request.set_content_hash(*flags->Get("hash"));
  }
  v1::GetCodebookResponse response;
  auto stub = v1::ArtifactService::NewStub(c.channel());
  if (absl::Status st = FromGrpc(stub->GetCodebook(c.NewContext().get(), request, &response));
      !st.ok()) {
    return st;
  }
  absl::StatusOr<std::vector<float>> centroids = VerifiedCentroids(response);
  if (!centroids.ok()) return centroids.status();
  if (flags->Has("json")) {
    // Centroids as JSON numbers that parse back to the same fp32 values.
    out << nlohmann::json{{"bits", response.bits()},
                          {"content_hash", response.content_hash()},
                          {"centroids", *centroids}}
               .dump()
        << "\n";
    return absl::OkStatus();
  }
  out << absl::StrFormat("codebook %d bits  %d centroids  sha256 %s\n", response.bits(),
                         centroids->size(), response.content_hash());
  for (size_t k = 0; k < centroids->size(); ++k) {
    out << absl::StrFormat("%4d  %.9g\n", k, (*centroids)[k]);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunArtifactsNoun(const CoordinatorConnection& c, const std::vector<std::string>& args,
                              std::ostream& out) {
  const std::string verb = args.empty() ? "" : args[0];
  const std::vector<std::string> rest(args.empty() ? args.end() : args.begin() + 1, args.end());
  if (verb == "codebook") return Codebook(c, rest, out);
  return absl::InvalidArgumentError("artifacts: expected codebook (see kvplan help)");
}

}  // namespace kvplan::cli
