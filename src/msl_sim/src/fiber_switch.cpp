// Context switch: x86-64 and arm64 assembly (callee-saved registers only), ucontext fallback.
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include "fiber.h"

#if defined(__APPLE__)
#define MSL_SIM_SYM(name) "_" #name
#define MSL_SIM_TYPE(name) ""
#else
#define MSL_SIM_SYM(name) #name
#define MSL_SIM_TYPE(name) ".type " #name ", @function\n"
#endif

extern "C" void msl_sim_switch(void** save_sp, void* new_sp);
extern "C" void msl_sim_trampoline();

#if defined(__x86_64__)
// Stack of a suspended context (low to high): r15 r14 r13 r12 rbx rbp return-address.
asm(".text\n"
    ".globl " MSL_SIM_SYM(msl_sim_switch) "\n" MSL_SIM_TYPE(msl_sim_switch)
    MSL_SIM_SYM(msl_sim_switch) ":\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".globl " MSL_SIM_SYM(msl_sim_trampoline) "\n" MSL_SIM_TYPE(msl_sim_trampoline)
    MSL_SIM_SYM(msl_sim_trampoline) ":\n"
    "  .cfi_startproc\n  .cfi_undefined rip\n"
    "  movq %r12, %rdi\n"
    "  callq *%r13\n"
    "  ud2\n"
    "  .cfi_endproc\n");
#elif defined(__aarch64__)
// Suspended context: x19..x30 (x29 fp, x30 lr) and d8..d15, 160 bytes.
asm(".text\n"
    ".globl " MSL_SIM_SYM(msl_sim_switch) "\n" MSL_SIM_TYPE(msl_sim_switch)
    ".p2align 2\n"
    MSL_SIM_SYM(msl_sim_switch) ":\n"
    "  sub sp, sp, #160\n"
    "  stp x19, x20, [sp, #0]\n  stp x21, x22, [sp, #16]\n  stp x23, x24, [sp, #32]\n"
    "  stp x25, x26, [sp, #48]\n  stp x27, x28, [sp, #64]\n  stp x29, x30, [sp, #80]\n"
    "  stp d8, d9, [sp, #96]\n  stp d10, d11, [sp, #112]\n  stp d12, d13, [sp, #128]\n"
    "  stp d14, d15, [sp, #144]\n"
    "  mov x9, sp\n  str x9, [x0]\n  mov sp, x1\n"
    "  ldp x19, x20, [sp, #0]\n  ldp x21, x22, [sp, #16]\n  ldp x23, x24, [sp, #32]\n"
    "  ldp x25, x26, [sp, #48]\n  ldp x27, x28, [sp, #64]\n  ldp x29, x30, [sp, #80]\n"
    "  ldp d8, d9, [sp, #96]\n  ldp d10, d11, [sp, #112]\n  ldp d12, d13, [sp, #128]\n"
    "  ldp d14, d15, [sp, #144]\n"
    "  add sp, sp, #160\n"
    "  ret\n"
    ".globl " MSL_SIM_SYM(msl_sim_trampoline) "\n" MSL_SIM_TYPE(msl_sim_trampoline)
    ".p2align 2\n"
    MSL_SIM_SYM(msl_sim_trampoline) ":\n"
    "  mov x0, x19\n  blr x20\n  brk #0\n");
#endif

namespace msl_sim::detail {

#ifndef MSL_SIM_UCONTEXT
void context_init(Context& ctx, void* stack_lo, std::size_t bytes, FiberEntry entry, void* arg) {
  auto top = (reinterpret_cast<std::uintptr_t>(stack_lo) + bytes) & ~std::uintptr_t(15);
#if defined(__x86_64__)
  // 9 slots: 6 registers, return address, 2 padding; the trampoline's call sees rsp % 16 == 0.
  auto* s = reinterpret_cast<std::uint64_t*>(top - 72);
  std::memset(s, 0, 72);
  s[2] = reinterpret_cast<std::uint64_t>(entry);  // r13
  s[3] = reinterpret_cast<std::uint64_t>(arg);    // r12
  s[6] = reinterpret_cast<std::uint64_t>(&msl_sim_trampoline);
#else
  auto* s = reinterpret_cast<std::uint64_t*>(top - 160);
  std::memset(s, 0, 160);
  s[0] = reinterpret_cast<std::uint64_t>(arg);                   // x19
  s[1] = reinterpret_cast<std::uint64_t>(entry);                 // x20
  s[11] = reinterpret_cast<std::uint64_t>(&msl_sim_trampoline);  // x30
#endif
  ctx.sp = s;
}

void context_switch(Context& from, Context& to) { msl_sim_switch(&from.sp, to.sp); }
#else
namespace {
void ucontext_entry(unsigned lo, unsigned hi, unsigned alo, unsigned ahi) {
  auto entry = reinterpret_cast<FiberEntry>((std::uintptr_t(hi) << 32) | lo);
  entry(reinterpret_cast<void*>((std::uintptr_t(ahi) << 32) | alo));
}
}  // namespace
void context_init(Context& ctx, void* stack_lo, std::size_t bytes, FiberEntry entry, void* arg) {
  if (getcontext(&ctx.uc) != 0) throw std::runtime_error("[msl_sim] getcontext failed");
  ctx.uc.uc_stack.ss_sp = stack_lo;
  ctx.uc.uc_stack.ss_size = bytes;
  ctx.uc.uc_link = nullptr;
  auto e = reinterpret_cast<std::uintptr_t>(entry);
  auto a = reinterpret_cast<std::uintptr_t>(arg);
  makecontext(&ctx.uc, reinterpret_cast<void (*)()>(&ucontext_entry), 4, unsigned(e),
              unsigned(e >> 32), unsigned(a), unsigned(a >> 32));
}
void context_switch(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
#endif

}  // namespace msl_sim::detail
