//! The lowest floor: a TCP relay that copies bytes between the client and the upstream
//! and does no HTTP at all, on blocking sockets with two threads per connection (what
//! `socat` does). What it adds at a fixed rate is the cost of one more process on the
//! path, two more thread wake-ups per request, that any proxy on this host pays.

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;

use anyhow::Result;

/// Relay every connection to `upstream` until killed; logs its address on stderr.
pub fn serve(upstream: &str) -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    #[expect(clippy::print_stderr, reason = "the parent process reads the address from stderr")]
    {
        eprintln!("bare forwarder listening on {}", listener.local_addr()?);
    }
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        let Ok(server) = TcpStream::connect(upstream) else { continue };
        let _ = (client.set_nodelay(true), server.set_nodelay(true));
        let (Ok(client_read), Ok(server_read)) = (client.try_clone(), server.try_clone()) else { continue };
        thread::spawn(move || pipe(client_read, server));
        thread::spawn(move || pipe(server_read, client));
    }
    Ok(())
}

/// Copy until EOF, then pass the half-close on.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}
