fn main() {
    println!("causeway: in progress");
}
