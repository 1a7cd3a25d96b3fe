//! Simulated OpenAI Realtime server (GA protocol).
