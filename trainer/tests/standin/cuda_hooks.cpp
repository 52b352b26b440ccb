// A stand-in for libtorch_cuda.so, for tests on machines without a GPU.
//
// libtorch answers "is CUDA there, how many devices?" through the CUDA hooks
// that libtorch_cuda.so registers under the name "CUDAHooks" when it is
// loaded. This library registers hooks of its own under that name that
// report ZFTRAIN_STANDIN_DEVICES devices (default 2) and no kernels, so a
// process that loads it before asking passes device detection and then
// fails at the first real CUDA operation, while one that asked first keeps
// libtorch's first answer (no device) for its whole life: exactly the
// ordering a real GPU machine needs. Built by the e2e tests with the C++
// compiler against the headers of the libtorch the tests link.
#include <ATen/detail/CUDAHooksInterface.h>

#include <cstdlib>

namespace {

struct StandInCUDAHooks : at::CUDAHooksInterface {
  explicit StandInCUDAHooks(at::CUDAHooksArgs) {}

  c10::DeviceIndex devices() const {
    const char* n = std::getenv("ZFTRAIN_STANDIN_DEVICES");
    return static_cast<c10::DeviceIndex>(n ? std::atoi(n) : 2);
  }
  bool hasCUDA() const override { return devices() > 0; }
  bool isAvailable() const override { return devices() > 0; }
  c10::DeviceIndex deviceCount() const override { return devices(); }
  int getNumGPUs() const override { return devices(); }
  bool hasPrimaryContext(c10::DeviceIndex) const override { return false; }
};

}  // namespace

namespace at {
C10_REGISTER_CLASS(CUDAHooksRegistry, CUDAHooks, StandInCUDAHooks)
}  // namespace at
