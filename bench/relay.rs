//! A TCP relay that delays each direction by a fixed time: round-trip time for the sandbox
//! fleet, whose kernel has no netem. bench/remote.sh builds it with plain `rustc` and puts one
//! in front of each fleet host's sshd (the ssh config's `Port` points at the relay).
//!
//!   relay LISTEN_PORT TARGET_PORT ONE_WAY_MS   (on 127.0.0.1; LISTEN_PORT 0 picks a free one)
//!
//! It prints the port it listens on, then runs until killed.
//!
//! Each chunk read from one side is written to the other ONE_WAY_MS after it was read, so a
//! request and its answer take 2 x ONE_WAY_MS more; bandwidth is not limited.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = thread::spawn(move || {
        for (due, chunk) in rx {
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx.send((Instant::now() + delay, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.join();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: relay LISTEN_PORT TARGET_PORT ONE_WAY_MS");
        std::process::exit(2);
    }
    let target = format!("127.0.0.1:{}", args[2]);
    let delay = Duration::from_millis(args[3].parse().expect("ONE_WAY_MS"));
    let listener = TcpListener::bind(("127.0.0.1", args[1].parse::<u16>().expect("port")))
        .expect("bind the relay's port");
    println!("{}", listener.local_addr().expect("the relay's address").port());
    let _ = std::io::stdout().flush();
    for client in listener.incoming().flatten() {
        let target = target.clone();
        thread::spawn(move || {
            let Ok(server) = TcpStream::connect(&target) else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (c2, s2) = match (client.try_clone(), server.try_clone()) {
                (Ok(c), Ok(s)) => (c, s),
                _ => return,
            };
            let up = thread::spawn(move || pipe(client, server, delay));
            pipe(s2, c2, delay);
            let _ = up.join();
        });
    }
}
