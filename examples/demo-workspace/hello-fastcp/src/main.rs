fn main() {
    println!("hello from cargo-fastcp's demo workspace");
}
