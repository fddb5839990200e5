/// Returns the answer; exported with the C ABI.
#[no_mangle]
pub extern "C" fn demo_ffi_answer() -> u32 {
    42
}
