//! Rust payload for std's threads: what the runtime builds on clone,
//! futexes and thread-local storage. Everything printed is a total or a
//! fixed order, never a schedule.
//!
//! Usage: `rust-threads MODE` with MODE one of
//! `spawn`, `mpsc`, `condvar`, `sleep`, `panic-main`, `panic-thread`.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Condvar, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

thread_local! {
    static CALLS: Cell<u32> = const { Cell::new(0) };
}

/// Named threads returning values; thread-locals stay per thread.
fn spawn() {
    let handles: Vec<_> = (0..8u64)
        .map(|i| {
            thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || {
                    for _ in 0..=i {
                        CALLS.with(|c| c.set(c.get() + 1));
                    }
                    let name = thread::current().name().unwrap().to_string();
                    let sum: u64 = (0..100_000u64).map(|x| x * i).sum();
                    (name, sum, CALLS.with(Cell::get))
                })
                .unwrap()
        })
        .collect();
    for h in handles {
        let (name, sum, calls) = h.join().unwrap();
        println!("{name}: sum {sum}, thread-local calls {calls}");
    }
    println!("main's thread-local calls: {}", CALLS.with(Cell::get));

    // Scoped threads borrow from the stack; a barrier keeps all 16 alive.
    let data: Vec<u64> = (1..=1600).collect();
    let barrier = Barrier::new(16);
    let total: u64 = thread::scope(|s| {
        let parts: Vec<_> = data
            .chunks(100)
            .map(|part| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    part.iter().sum::<u64>()
                })
            })
            .collect();
        parts.into_iter().map(|p| p.join().unwrap()).sum()
    });
    println!("scoped sum: {total}");
}

/// Several producers into one channel, a sync_channel for back-pressure.
fn channels() {
    let (tx, rx) = mpsc::channel();
    for p in 0..4u64 {
        let tx = tx.clone();
        thread::spawn(move || {
            for i in 0..1000 {
                tx.send(p * 1000 + i).unwrap();
            }
        });
    }
    drop(tx);
    let mut got: Vec<u64> = rx.iter().collect();
    got.sort_unstable();
    let in_order = got.iter().copied().eq(0..4000);
    println!(
        "mpsc: {} messages, each exactly once: {in_order}",
        got.len()
    );

    let (tx, rx) = mpsc::sync_channel(2);
    let producer = thread::spawn(move || {
        for i in 0..500u32 {
            tx.send(i).unwrap();
        }
    });
    let received: Vec<u32> = rx.iter().collect();
    producer.join().unwrap();
    println!(
        "sync_channel: {} messages in order: {}",
        received.len(),
        received.iter().copied().eq(0..500)
    );
}

/// Mutex, RwLock and Condvar between threads sharing state through Arc.
fn condvar() {
    let counter = Arc::new(Mutex::new(0u64));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let counter = Arc::clone(&counter);
            thread::spawn(move || {
                for _ in 0..10_000 {
                    *counter.lock().unwrap() += 1;
                }
            })
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    println!("mutex counter: {}", counter.lock().unwrap());

    // Turn-taking: each thread waits for its number, 3 threads × 100 turns.
    let turn = Arc::new((Mutex::new(0usize), Condvar::new()));
    let log = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..3)
        .map(|me| {
            let (turn, log) = (Arc::clone(&turn), Arc::clone(&log));
            thread::spawn(move || {
                let (lock, cv) = &*turn;
                for _ in 0..100 {
                    let mut t = cv
                        .wait_while(lock.lock().unwrap(), |t| *t % 3 != me)
                        .unwrap();
                    log.lock().unwrap().push(me);
                    *t += 1;
                    cv.notify_all();
                }
            })
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    let log = log.lock().unwrap();
    let alternating = log.iter().enumerate().all(|(i, &m)| m == i % 3);
    println!(
        "condvar turns: {}, strictly alternating: {alternating}",
        log.len()
    );

    let table = Arc::new(RwLock::new(vec![0u32; 16]));
    let readers_saw = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..4)
        .map(|w| {
            let (table, readers_saw) = (Arc::clone(&table), Arc::clone(&readers_saw));
            thread::spawn(move || {
                for i in 0..100 {
                    if i % 10 == 0 {
                        table.write().unwrap()[w] += 1;
                    } else {
                        let t = table.read().unwrap();
                        // A writer's update is all or nothing.
                        assert!(t.iter().all(|&v| v <= 10));
                        readers_saw.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    println!(
        "rwlock: writes {:?}, reads {}",
        &table.read().unwrap()[..4],
        readers_saw.load(Ordering::Relaxed)
    );
}

/// thread::sleep lasts at least as long as asked, in any thread.
fn sleep() {
    let start = Instant::now();
    thread::sleep(Duration::from_millis(20));
    println!(
        "main slept at least 20ms: {}",
        start.elapsed() >= Duration::from_millis(20)
    );
    let sleeper = thread::spawn(|| {
        let start = Instant::now();
        thread::sleep(Duration::from_millis(15));
        start.elapsed() >= Duration::from_millis(15)
    });
    println!("thread slept at least 15ms: {}", sleeper.join().unwrap());
    let parked = thread::spawn(|| thread::park());
    thread::sleep(Duration::from_millis(5));
    parked.thread().unpark();
    parked.join().unwrap();
    println!("park/unpark: woke");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("spawn") => spawn(),
        Some("mpsc") => channels(),
        Some("condvar") => condvar(),
        Some("sleep") => sleep(),
        Some("panic-main") => panic!("deliberate panic in main"),
        Some("panic-thread") => {
            let worker = thread::Builder::new()
                .name("doomed".into())
                .spawn(|| -> u32 { panic!("deliberate panic in a thread") })
                .unwrap();
            let result = worker.join();
            let message = result
                .as_ref()
                .err()
                .and_then(|e| e.downcast_ref::<&str>())
                .copied();
            println!("join: error {}, message {message:?}", result.is_err());
            println!("main continues");
        }
        _ => {
            eprintln!("usage: rust-threads spawn|mpsc|condvar|sleep|panic-main|panic-thread");
            std::process::exit(2);
        }
    }
}
